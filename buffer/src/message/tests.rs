use super::*;
use crate::test_support::hex;

/// A frame with a correct checksum appended.
fn framed(head: &[u8]) -> Vec<u8> {
    let mut f = head.to_vec();
    f.push(checksum(head));
    f
}

#[test]
fn all_vectors() {
    let json = crate::test_support::vectors();
    let vectors = json["messages"].as_array().unwrap();
    assert_eq!(vectors.len(), 17);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let raw = hex(v["raw"].as_str().unwrap());
        let enc = hex(v["cobs"].as_str().unwrap());
        let msg = Message::from_frame(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.to_frame().unwrap(), raw, "{name}: to_frame");
        assert_eq!(msg.encode().unwrap(), enc, "{name}: encode");
        assert_eq!(Message::decode(&enc).unwrap(), msg, "{name}: decode");
        let mut delimited = enc.clone();
        delimited.push(0);
        assert_eq!(msg.encode_delimited().unwrap(), delimited, "{name}");
        assert_eq!(Message::decode(&delimited).unwrap(), msg, "{name}");
    }
}

#[test]
fn parses_fields() {
    let m = Message::from_frame(&hex(
        "12 0f 03 00 64 00 ff ff ee ef be ad de ef be de c0 f9",
    ))
    .unwrap();
    assert_eq!(
        m,
        Message::SubRes {
            params: 0b11,
            interval_ms: 100,
            device_id: 0xffff,
            year: 0xee,
            random: 0xc0de_beef_dead_beef,
        }
    );
    assert_eq!(
        Message::from_frame(&hex("ff 01 fd 03")).unwrap(),
        Message::Error {
            code: ErrorCode::UnexpectedDelimiter
        }
    );
}

#[test]
fn truncated() {
    assert_eq!(
        Message::from_frame(&[0x10, 0x00]),
        Err(MessageError::Truncated {
            needed: 3,
            found: 2
        })
    );
    let err = Message::from_frame(&hex("11 04 ff ff 80 95")).unwrap_err();
    assert_eq!(
        err,
        MessageError::Truncated {
            needed: 7,
            found: 6
        }
    );
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn over_long() {
    let err = Message::from_frame(&hex("10 00 10 00")).unwrap_err();
    assert_eq!(
        err,
        MessageError::OverLong {
            expected: 3,
            found: 4
        }
    );
}

#[test]
fn bad_checksum() {
    let err = Message::from_frame(&hex("10 00 11")).unwrap_err();
    assert_eq!(
        err,
        MessageError::BadChecksum {
            expected: 0x10,
            found: 0x11
        }
    );
    assert_eq!(err.to_string(), "bad checksum: expected 0x10, found 0x11");
}

#[test]
fn stray_zero() {
    assert_eq!(
        Message::decode(&hex("02 10 00 02 10")),
        Err(MessageError::StrayZero { offset: 2 })
    );
    // Two trailing zeros: only one delimiter is allowed.
    assert_eq!(
        Message::decode(&hex("02 10 02 10 00 00")),
        Err(MessageError::StrayZero { offset: 4 })
    );
}

#[test]
fn bad_cobs() {
    // The code byte claims 5 bytes follow, only 2 do.
    assert!(matches!(
        Message::decode(&hex("06 10 02")),
        Err(MessageError::BadCobs { .. })
    ));
    assert!(matches!(
        Message::decode(&[]),
        Err(MessageError::BadCobs { .. })
    ));
    assert!(matches!(
        Message::decode(&[0]),
        Err(MessageError::BadCobs { .. })
    ));
}

#[test]
fn unknown_type() {
    let err = Message::from_frame(&framed(&[0x42, 0x00])).unwrap_err();
    assert_eq!(err, MessageError::UnknownType(0x42));
    assert!(err.to_string().contains("0x42"), "{err}");
}

#[test]
fn wrong_payload_length() {
    let err = Message::from_frame(&framed(&[0x11, 0x02, 0x01, 0x00])).unwrap_err();
    assert_eq!(
        err,
        MessageError::BadPayloadLength {
            msg_type: MessageType::SubReq,
            min: 4,
            max: 4,
            found: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "SUB_REQ (0x11) payload must be exactly 4 bytes, found 2"
    );
    let err = Message::from_frame(&framed(&[0x14, 0x01, 0x01])).unwrap_err();
    assert!(err.to_string().contains("at least 2"), "{err}");
    assert!(matches!(
        Message::from_frame(&framed(&[0x10, 0x01, 0x01])),
        Err(MessageError::BadPayloadLength { .. })
    ));
}

#[test]
fn unknown_error_code() {
    assert_eq!(
        Message::from_frame(&framed(&[0xff, 0x01, 0x01])),
        Err(MessageError::UnknownErrorCode(0x01))
    );
}

#[test]
fn payload_too_long() {
    let msg = Message::DevWrite {
        bitmap: 1,
        values: vec![0xff; 254],
    };
    assert_eq!(
        msg.to_frame(),
        Err(MessageError::PayloadTooLong { len: 256 })
    );
    assert!(msg.encode().is_err());
    let max = Message::DevData {
        bitmap: 1,
        values: vec![0xff; 253],
    };
    assert_eq!(max.to_frame().unwrap().len(), 258);
}

#[test]
fn ids() {
    for id in 0..=u8::MAX {
        if let Some(t) = MessageType::from_id(id) {
            assert_eq!(t.id(), id);
        }
        if let Some(c) = ErrorCode::from_code(id) {
            assert_eq!(c.code(), id);
        }
    }
    assert_eq!(MessageType::from_id(0x19), None);
}

#[test]
fn the_table_gives_names_ids_lengths_and_fields() {
    let names: Vec<&str> = MessageType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "PING",
            "SUB_REQ",
            "SUB_RES",
            "DEV_READ",
            "DEV_WRITE",
            "DEV_DATA",
            "DEV_DISABLE",
            "HB_REQ",
            "HB_RES",
            "ERROR"
        ]
    );
    let ids: Vec<u8> = MessageType::ALL.iter().map(|t| t.id()).collect();
    assert_eq!(
        ids,
        [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0xFF]
    );
    let lens: Vec<(usize, usize)> = MessageType::ALL.iter().map(|t| t.payload_len()).collect();
    assert_eq!(
        lens,
        [
            (0, 0),
            (4, 4),
            (15, 15),
            (2, 2),
            (2, MAX_PAYLOAD),
            (2, MAX_PAYLOAD),
            (0, 0),
            (1, 1),
            (1, 1),
            (1, 1)
        ]
    );
    let sub_res: Vec<(&str, FieldKind, u64)> = MessageType::SubRes
        .fields()
        .iter()
        .map(|f| (f.name, f.kind, f.max_int()))
        .collect();
    assert_eq!(
        sub_res,
        [
            ("params", FieldKind::Params, 0xFFFF),
            ("interval_ms", FieldKind::Int, 0xFFFF),
            ("device_id", FieldKind::Int, 0xFFFF),
            ("year", FieldKind::Int, 0xFF),
            ("random", FieldKind::Int, u64::MAX)
        ]
    );
    let dev_write: Vec<(&str, FieldKind)> = MessageType::DevWrite
        .fields()
        .iter()
        .map(|f| (f.name, f.kind))
        .collect();
    assert_eq!(
        dev_write,
        [
            ("bitmap", FieldKind::ValueBitmap),
            ("values", FieldKind::Values)
        ]
    );
    assert!(MessageType::Ping.fields().is_empty());
    assert_eq!(MessageType::Error.fields()[0].kind, FieldKind::Code);
}

#[test]
fn every_vector_round_trips_through_its_fields() {
    let json = crate::test_support::vectors();
    for v in json["messages"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let msg = Message::from_frame(&hex(v["raw"].as_str().unwrap())).unwrap();
        let t = msg.message_type();
        let values = msg.field_values();
        assert_eq!(values.len(), t.fields().len(), "{name}");
        // Each field's value takes as many bytes as the payload gives it.
        let bytes: usize = values
            .iter()
            .zip(t.fields())
            .map(|(value, field)| match value {
                FieldValue::Bytes(b) => b.len(),
                _ => field.len.0,
            })
            .sum();
        assert_eq!(bytes, msg.payload().len(), "{name}");
        let mut given = values.into_iter();
        let again = Message::from_fields(t, |_| {
            Ok::<_, FieldError>(given.next().expect("one value per field"))
        })
        .unwrap();
        assert_eq!(again, msg, "{name}");
    }
}

#[test]
fn from_fields_refuses_values_that_do_not_fit() {
    let e = Message::from_fields(MessageType::SubReq, |_| {
        Ok::<_, FieldError>(FieldValue::UInt(70_000))
    })
    .unwrap_err();
    assert_eq!(e.field, "params");
    assert_eq!(
        e.to_string(),
        "`params` of a SUB_REQ message must be an integer 0..=65535, found 70000"
    );
    let e = Message::from_fields(MessageType::Error, |_| {
        Ok::<_, FieldError>(FieldValue::UInt(1))
    })
    .unwrap_err();
    assert!(e.to_string().contains("must be an error code"), "{e}");
}
