use super::*;

const PIE: &str = include_str!("../../../fixtures/buffers/pie-catalog.json");

fn pie() -> Catalog {
    Catalog::from_json(PIE).expect("pie catalog parses")
}

/// The first type whose params are exactly `names` (found by params, not by name).
fn find_by_params<'a>(c: &'a Catalog, names: &[&str]) -> &'a DeviceType {
    c.types()
        .iter()
        .find(|t| {
            t.params
                .iter()
                .map(|p| p.name.as_str())
                .eq(names.iter().copied())
        })
        .expect("type with these params")
}

fn err(json: &str) -> CatalogError {
    Catalog::from_json(json).expect_err("catalog must be rejected")
}

#[test]
fn every_pie_type_parses_and_lays_out() {
    let c = pie();
    assert_eq!(c.len(), 13);
    assert_eq!(c.names().next(), Some("limit-switch"));
    assert_eq!(c.names().last(), Some("field"));
    for t in c.types() {
        let l = t.layout();
        assert_eq!(l.size % l.align, 0, "{}", t.name);
        assert_eq!(l.control_offset.is_some(), t.is_smart(), "{}", t.name);
        let readable = t.params.iter().filter(|p| p.readable).count();
        let writeable = t.params.iter().filter(|p| p.writeable).count();
        assert_eq!(l.update_block.fields.len(), readable);
        assert_eq!(l.write_block.fields.len(), writeable);
        serde_json::to_string(&l).unwrap();
    }
    let field = c.get("field").unwrap();
    assert_eq!(field.device_id, None);
    assert_eq!(field.params[2].ty.c_type(), "uint8_t[4096]");
    // 1 + 1 + 1 + 4096 + 4096, valid flag first, no control: 8194 bytes.
    let l = field.layout();
    assert_eq!(l.update_block.offset, 1);
    assert_eq!(l.update_block.size, 8194);
    assert_eq!(l.write_block.offset, 8195);
    assert_eq!(l.size, 8195);
    assert_eq!(c.by_device_id(11).unwrap().name, "rfid");
    assert_eq!(c.get("rfid").unwrap().sub_interval, 0.1);
    assert_eq!(c.get("rfid").unwrap().write_interval, 0.04);
    assert_eq!(c.get("rfid").unwrap().heartbeat_interval, 1.0);
    assert_eq!(c.get("koala-bear").unwrap().params.len(), 16);
}

#[test]
fn limit_switch_is_312_bytes() {
    let c = pie();
    let t = find_by_params(&c, &["switch0", "switch1", "switch2"]);
    let l = t.layout();
    assert_eq!(l.size, 312);
    assert_eq!(l.align, 8);
    assert_eq!(l.valid_flag_offset, 0);
    assert_eq!((l.update_block.offset, l.update_block.size), (1, 3));
    assert_eq!((l.write_block.offset, l.write_block.size), (4, 0));
    assert_eq!(l.write_block.align, 1);
    assert_eq!(l.control_offset, Some(8));
    assert_eq!(l.metrics_offset, Some(56));
}

#[test]
fn servo_is_328_bytes() {
    let c = pie();
    let t = find_by_params(&c, &["servo0", "servo1"]);
    let l = t.layout();
    assert_eq!(l.size, 328);
    assert_eq!((l.update_block.offset, l.update_block.size), (4, 8));
    assert_eq!((l.write_block.offset, l.write_block.size), (12, 8));
    assert_eq!(l.control_offset, Some(24));
    assert_eq!(l.metrics_offset, Some(72));
    assert_eq!(t.params[0].lower, -1.0);
    assert_eq!(t.params[0].upper, 1.0);
}

#[test]
fn null_device_is_312_bytes() {
    let c = Catalog::from_json(r#"{"null-device": {"device_id": 99, "params": []}}"#).unwrap();
    let l = c.get("null-device").unwrap().layout();
    assert_eq!(l.size, 312);
    assert_eq!((l.update_block.offset, l.update_block.size), (1, 0));
    assert_eq!((l.write_block.offset, l.write_block.size), (1, 0));
    assert_eq!(l.control_offset, Some(8));
    assert_eq!(l.metrics_offset, Some(56));
    // `params` may be omitted; a plain buffer with no params is just the flag.
    let c = Catalog::from_json(r#"{"empty": {}}"#).unwrap();
    assert_eq!(c.get("empty").unwrap().layout().size, 1);
}

#[test]
fn example_device_layout() {
    let v = crate::test_support::vectors();
    let text = serde_json::to_string(&v["example_device"]["catalog"]).unwrap();
    let c = Catalog::from_json(&text).unwrap();
    let t = c.get("example-device").unwrap();
    assert_eq!(t.device_id, Some(128));
    let ids: Vec<u8> = t.params.iter().map(|p| p.id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert!(!t.params[0].readable && t.params[0].writeable && !t.params[0].subscribed);
    assert_eq!(t.param("duty_cycle").unwrap().ty.size(), 4); // double stored as float
                                                             // By hand:
                                                             //   valid_flag bool                                   @0
                                                             //   update_block (align 4)                            @4 (1 -> 4)
                                                             //     duty_cycle float @0, id uint32_t @4, large char[253] @8..261,
                                                             //     pos float @264 (261 -> 264) => size 268
                                                             //   write_block (align 4)                             @272 (4 + 268)
                                                             //     flag bool @0, id uint32_t @4, large char[253] @8..261,
                                                             //     pos float @264 => size 268
                                                             //   control (align 8)                                 @544 (540 -> 544)
                                                             //   metrics                                           @592 (544 + 48)
                                                             //   size 592 + 256 = 848, align 8
    let l = t.layout();
    let fields = |b: &BlockLayout| -> Vec<(String, usize, usize, String)> {
        b.fields
            .iter()
            .map(|f| (f.name.clone(), f.offset, f.size, f.c_type.clone()))
            .collect()
    };
    let f = |n: &str, o, s, c: &str| (n.to_owned(), o, s, c.to_owned());
    assert_eq!(
        fields(&l.update_block),
        [
            f("duty_cycle", 0, 4, "float"),
            f("id", 4, 4, "uint32_t"),
            f("large", 8, 253, "char[253]"),
            f("pos", 264, 4, "float"),
        ]
    );
    assert_eq!(
        fields(&l.write_block),
        [
            f("flag", 0, 1, "bool"),
            f("id", 4, 4, "uint32_t"),
            f("large", 8, 253, "char[253]"),
            f("pos", 264, 4, "float"),
        ]
    );
    assert_eq!(
        (
            l.update_block.offset,
            l.update_block.size,
            l.update_block.align
        ),
        (4, 268, 4)
    );
    assert_eq!(
        (
            l.write_block.offset,
            l.write_block.size,
            l.write_block.align
        ),
        (272, 268, 4)
    );
    assert_eq!(l.control_offset, Some(544));
    assert_eq!(l.metrics_offset, Some(592));
    assert_eq!((l.size, l.align), (848, 8));
    let json = serde_json::to_value(&l).unwrap();
    assert_eq!(json["update_block"]["fields"][2]["c_type"], "char[253]");
    assert_eq!(json["control_offset"], 544);
}

#[test]
fn param_types_parse() {
    let t: ParamType = "uint64[8][8]".parse().unwrap();
    assert_eq!(t.dims, [8, 8]);
    assert_eq!((t.size(), t.align(), t.len()), (512, 8, 64));
    assert_eq!(t.c_type(), "uint64_t[8][8]");
    assert_eq!(t.to_string(), "uint64[8][8]");
    let d: ParamType = "double".parse().unwrap();
    assert_eq!((d.size(), d.align(), d.c_type().as_str()), (4, 4, "float"));
    for s in Scalar::ALL {
        assert_eq!(Scalar::from_name(s.name()), Some(s));
        assert_eq!(s.align(), s.size());
    }
    assert_eq!(Scalar::Long.size(), 8);
    assert_eq!(Scalar::Short.size(), 2);
    assert_eq!(Scalar::SizeT.c_type(), "size_t");
    assert_eq!(
        "char[]".parse::<ParamType>(),
        Err(ParamTypeError::BadVectorSyntax("empty dimension `[]`"))
    );
    for bad in [
        "char[0]", "char[x]", "char[8", "char]", "char[8]x", "char[-1]", "char[ 8]",
    ] {
        assert!(
            matches!(
                bad.parse::<ParamType>(),
                Err(ParamTypeError::BadVectorSyntax(_))
            ),
            "{bad}"
        );
    }
    assert_eq!("int*".parse::<ParamType>(), Err(ParamTypeError::Pointer));
    assert_eq!(
        "Int".parse::<ParamType>(),
        Err(ParamTypeError::UnknownScalar("Int".into()))
    );
    assert_eq!(
        "uint64[99999999999][99999999999]".parse::<ParamType>(),
        Err(ParamTypeError::TooLarge)
    );
}

#[test]
fn error_invalid_json() {
    let e = err("{\n  \"a\": {\"params\": [}\n}");
    let CatalogError::Json { line, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*line, 2);
    assert!(
        e.to_string()
            .starts_with("invalid catalog JSON at line 2, column"),
        "{e}"
    );
    let e = err(r#"{"t": {"params": [{"name": "x", "type": "bool", "writable": true}]}}"#);
    assert!(e.to_string().contains("t.params[0]"), "{e}");
    assert!(e.to_string().contains("writable"), "{e}");
    assert!(matches!(err("{} x"), CatalogError::Json { .. }));
    assert!(matches!(err("[]"), CatalogError::Json { .. }));
}

#[test]
fn error_unknown_scalar() {
    let e = err(r#"{"t": {"params": [{"name": "p", "type": "quad[2]"}]}}"#);
    assert_eq!(
        e.to_string(),
        "type `t`, parameter `p`: unknown scalar type `quad` in `quad[2]`"
    );
}

#[test]
fn error_bad_vector_syntax() {
    for ty in ["char[]", "char[0]", "char[x]", "char[4", "char4]"] {
        let e = err(&format!(
            r#"{{"t": {{"params": [{{"name": "p", "type": "{ty}"}}]}}}}"#
        ));
        assert!(
            matches!(e, CatalogError::BadVectorSyntax { .. }),
            "{ty}: {e:?}"
        );
        assert!(
            e.to_string().starts_with(&format!(
                "type `t`, parameter `p`: bad vector syntax in `{ty}`"
            )),
            "{e}"
        );
    }
}

#[test]
fn error_pointer_type() {
    let e = err(r#"{"t": {"params": [{"name": "p", "type": "char*"}]}}"#);
    assert_eq!(
        e.to_string(),
        "type `t`, parameter `p`: pointer type `char*` is not allowed"
    );
}

#[test]
fn error_param_too_large() {
    let e = err(r#"{"t": {"params": [{"name": "p", "type": "uint64[4294967296]"}]}}"#);
    assert!(matches!(e, CatalogError::ParamTooLarge { .. }), "{e:?}");
    assert!(e
        .to_string()
        .starts_with("type `t`, parameter `p`: `uint64[4294967296]`"));
}

fn bools(n: usize) -> String {
    (0..n)
        .map(|i| format!(r#"{{"name": "p{i}", "type": "bool"}}"#))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn error_too_many_params() {
    let e = err(&format!(
        r#"{{"t": {{"device_id": 1, "params": [{}]}}}}"#,
        bools(17)
    ));
    assert_eq!(
        e.to_string(),
        "type `t`: a Smart Device may have at most 16 parameters, found 17"
    );
    // 16 is fine, and a plain buffer may have more.
    Catalog::from_json(&format!(
        r#"{{"t": {{"device_id": 1, "params": [{}]}}}}"#,
        bools(16)
    ))
    .unwrap();
    Catalog::from_json(&format!(r#"{{"t": {{"params": [{}]}}}}"#, bools(40))).unwrap();
}

#[test]
fn error_param_id_out_of_range() {
    let e = err(r#"{"t": {"device_id": 1, "params": [{"name": "p", "type": "bool", "id": 16}]}}"#);
    assert_eq!(
        e.to_string(),
        "type `t`, parameter `p`: id 16 is out of range for a Smart Device (0..16)"
    );
    // A plain buffer may use any u8 id.
    Catalog::from_json(r#"{"t": {"params": [{"name": "p", "type": "bool", "id": 200}]}}"#).unwrap();
}

#[test]
fn error_duplicate_param_name() {
    let e =
        err(r#"{"t": {"params": [{"name": "p", "type": "bool"}, {"name": "p", "type": "int"}]}}"#);
    assert_eq!(e.to_string(), "type `t`: duplicate parameter name `p`");
}

#[test]
fn error_duplicate_param_id() {
    let e = err(
        r#"{"t": {"params": [{"name": "a", "type": "bool", "id": 1}, {"name": "b", "type": "bool"}]}}"#,
    );
    assert_eq!(
        e.to_string(),
        "type `t`: parameters `a` and `b` have the same id 1"
    );
}

#[test]
fn error_invalid_bounds() {
    let e = err(r#"{"t": {"params": [{"name": "p", "type": "float", "lower": 1, "upper": -1}]}}"#);
    assert_eq!(
        e.to_string(),
        "type `t`, parameter `p`: lower bound 1 is above upper bound -1"
    );
}

#[test]
fn error_duplicate_device_id() {
    let e = err(r#"{"a": {"device_id": 3}, "b": {"device_id": 4}, "c": {"device_id": 3}}"#);
    assert_eq!(e.to_string(), "types `a` and `c` have the same device_id 3");
}

#[test]
fn error_duplicate_type_name() {
    let e = err(r#"{"a": {"params": []}, "a": {"device_id": 3}}"#);
    assert_eq!(e.to_string(), "duplicate type name `a`");
}
