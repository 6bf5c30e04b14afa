//! SDK 1.1's promise for `bitstream_sdk::buffer`: every public path of the
//! module as SDK 1.1 shipped it still names the same item, every public
//! method still exists with a compatible signature, and the public enums and
//! structs have exactly the variants and fields they had (an exhaustive
//! `match` or destructuring pattern below fails to compile when one is added
//! or removed). Device buffers now live in the `bitstream-buffer` crate; the
//! SDK re-exports them, and this test holds the re-export to SDK 1.1.
//!
//! Nothing here runs buffer code: the test is that this file compiles. The
//! list was made from `grep 'pub '` over `sdk/src/buffer/` of SDK 1.1.0.
#![cfg(feature = "buffer")]
// It names the unsafe constructors (`from_raw`, `from_region`) as function
// pointers, which needs an `unsafe` block around the coercion.
#![allow(unsafe_code)]
#![allow(
    dead_code,
    unused_imports,
    clippy::too_many_arguments,
    clippy::type_complexity
)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

// -- every public item, by its SDK 1.1 path ---------------------------------

use bitstream_sdk::buffer;
use bitstream_sdk::buffer::{catalog, clock, device, message, segment, store, value};

use bitstream_sdk::buffer::catalog::control_offsets;
use bitstream_sdk::buffer::catalog::{
    BlockLayout, Catalog, CatalogError, DeviceType, FieldLayout, Layout, Param, ParamType,
    ParamTypeError, Scalar, SplitError, CONTROL_ALIGN, CONTROL_SIZE, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_SUB_INTERVAL, DEFAULT_WRITE_INTERVAL, DEVICE_UID_SIZE, MAX_PARAM_SIZE,
    MAX_SMART_PARAMS, METRICS_ALIGN, METRICS_SIZE,
};
use bitstream_sdk::buffer::clock::{now, ticking, ClockTicker, TICK_PERIOD};
use bitstream_sdk::buffer::device::{
    Buffer, BufferError, BufferType, DeviceBuffer, DeviceUid, ParamHandle, PendingBits,
    Transaction, MAX_INTERVAL_MS, MIN_INTERVAL_MS,
};
use bitstream_sdk::buffer::message::{
    bitmap_ids, checksum, ErrorCode, Message, MessageError, MessageType, FRAME_OVERHEAD,
    MAX_PAYLOAD,
};
use bitstream_sdk::buffer::segment::header_offsets;
use bitstream_sdk::buffer::segment::{
    validate_name, HeaderInfo, Segment, SegmentError, SegmentGuard, SegmentSpec, DATA_ALIGN,
    HEADER_SIZE, MAX_NAME_LEN, MAX_TYPE_NAME, SEGMENT_DATA_OFFSET, SEGMENT_MAGIC, SEGMENT_VERSION,
    SHM_DIR,
};
use bitstream_sdk::buffer::store::{BufferStore, StoreOptions, StoredBuffer};
use bitstream_sdk::buffer::value::{
    decode, decode_scalar, decode_scalar_bits, encode, Bound, ParamValue, ValueError, Warning,
};

/// The constants, with their SDK 1.1 types.
const CONSTANTS: () = {
    let _: usize = MAX_SMART_PARAMS;
    let _: usize = MAX_PARAM_SIZE;
    let _: f64 = DEFAULT_SUB_INTERVAL;
    let _: f64 = DEFAULT_WRITE_INTERVAL;
    let _: f64 = DEFAULT_HEARTBEAT_INTERVAL;
    let _: usize = DEVICE_UID_SIZE;
    let _: usize = CONTROL_SIZE;
    let _: usize = CONTROL_ALIGN;
    let _: usize = METRICS_SIZE;
    let _: usize = METRICS_ALIGN;
    let _: [usize; 11] = [
        control_offsets::UID_DEVICE_ID,
        control_offsets::UID_YEAR,
        control_offsets::UID_RANDOM,
        control_offsets::UID,
        control_offsets::SUBSCRIPTION,
        control_offsets::INTERVAL,
        control_offsets::READ,
        control_offsets::WRITE,
        control_offsets::UPDATE,
        control_offsets::LAST_WRITE,
        control_offsets::LAST_UPDATE,
    ];
    let _: [Scalar; 24] = Scalar::ALL;
    let _: Duration = TICK_PERIOD;
    let _: u16 = MIN_INTERVAL_MS;
    let _: u16 = MAX_INTERVAL_MS;
    let _: usize = MAX_PAYLOAD;
    let _: usize = FRAME_OVERHEAD;
    let _: u64 = SEGMENT_MAGIC;
    let _: u32 = SEGMENT_VERSION;
    let _: usize = DATA_ALIGN;
    let _: usize = MAX_TYPE_NAME;
    let _: usize = MAX_NAME_LEN;
    let _: &str = SHM_DIR;
    let _: usize = HEADER_SIZE;
    let _: usize = SEGMENT_DATA_OFFSET;
    let _: [usize; 11] = [
        header_offsets::MAGIC,
        header_offsets::VERSION,
        header_offsets::HEADER_SIZE,
        header_offsets::DATA_OFFSET,
        header_offsets::DATA_SIZE,
        header_offsets::TYPE_HASH,
        header_offsets::SPEC_OFFSET,
        header_offsets::SPEC_LEN,
        header_offsets::TYPE_NAME,
        header_offsets::CREATOR_PID,
        header_offsets::MUTEX,
    ];
    // `const fn`s of SDK 1.1 stay usable in constants.
    let _: u8 = MessageType::Ping.id();
    let _: Option<MessageType> = MessageType::from_id(0x10);
    let _: &str = MessageType::Ping.name();
    let _: (usize, usize) = MessageType::Ping.payload_len();
    let _: u8 = ErrorCode::Ok.code();
    let _: Option<ErrorCode> = ErrorCode::from_code(0);
    let _: &str = ErrorCode::Ok.name();
};

// -- free functions -----------------------------------------------------------

fn free_functions() {
    let _: fn() -> f64 = now;
    let _: fn() -> bool = ticking;
    let _: fn(&str) -> Result<(), SegmentError> = validate_name;
    let _: fn(&[u8]) -> u8 = checksum;
    let _: fn(&ParamType, &[u8]) -> ParamValue = decode;
    let _: fn(Scalar, &[u8]) -> ParamValue = decode_scalar;
    let _: fn(Scalar, u64) -> ParamValue = decode_scalar_bits;
    let _: fn(&Param, &ParamValue, &mut [u8]) -> Result<Option<Warning>, ValueError> = encode;
    let _: Vec<u8> = bitmap_ids(0b101).collect();
}

// -- methods --------------------------------------------------------------------

fn catalog_methods(c: &Catalog, t: &DeviceType, pt: &ParamType, s: Scalar, b: &BlockLayout) {
    let _: Result<Catalog, CatalogError> = Catalog::from_json("{}");
    let _: Result<Catalog, CatalogError> = "{}".parse::<Catalog>();
    let _: Option<&DeviceType> = c.get("t");
    let _: Option<&DeviceType> = c.by_device_id(1);
    let _: &[DeviceType] = c.types();
    let _: Vec<&str> = c.names().collect();
    let _: usize = c.len();
    let _: bool = c.is_empty();
    let _: Catalog = Catalog::default();
    let _: bool = t.is_smart();
    let _: String = t.param_list();
    let _: Option<&Param> = t.param("p");
    let _: Option<&Param> = t.param_by_id(0);
    let _: Result<Vec<(&Param, std::ops::Range<usize>)>, SplitError> = t.split_values(true, 1, 4);
    let _: Layout = t.layout();
    let _: bool = pt.is_vector();
    let _: usize = pt.len();
    let _: bool = pt.is_empty();
    let _: usize = pt.size();
    let _: usize = pt.align();
    let _: String = pt.c_type();
    let _: Result<ParamType, ParamTypeError> = "uint8[2]".parse::<ParamType>();
    let _: String = pt.to_string();
    let _: &str = s.name();
    let _: Option<Scalar> = Scalar::from_name("int8");
    let _: &str = s.c_type();
    let _: usize = s.size();
    let _: usize = s.align();
    let _: bool = s.is_float();
    let _: bool = s.is_signed_int();
    let _: (i128, i128) = s.int_range();
    let _: String = s.to_string();
    let _: Option<&FieldLayout> = b.field("p");
}

fn clock_methods() {
    let _: std::io::Result<ClockTicker> = ClockTicker::start();
}

fn buffer_methods(
    ty: &Arc<BufferType>,
    t: &DeviceType,
    c: &Catalog,
    b: &Buffer,
    h: ParamHandle,
    j: &Json,
    p: *mut u8,
) {
    let _: BufferType = BufferType::new(t);
    let _: Result<BufferType, BufferError> = BufferType::from_catalog(c, "t");
    let _: &DeviceType = ty.device_type();
    let _: &str = ty.name();
    let _: &Layout = ty.layout();
    let _: &str = ty.spec_json();
    let _: u64 = ty.hash();

    let _: Result<Buffer, BufferError> = Buffer::new_local(ty);
    let _: Result<Buffer, BufferError> = Buffer::create_shared("n", ty);
    let _: Result<Buffer, BufferError> = Buffer::attach_shared("n", ty);
    let _: Result<Buffer, BufferError> = Buffer::open_shared("n");
    // SAFETY: never run (this function is only compiled).
    let _: Result<Buffer, BufferError> = unsafe { Buffer::from_raw_segment(p, 0, ty) };
    // SAFETY: never run (this function is only compiled).
    let _: Result<Buffer, BufferError> = unsafe { Buffer::from_region(p, 0) };
    let _: &str = b.name();
    let _: &Arc<BufferType> = b.buffer_type();
    let _: &Segment = b.segment();
    let _: bool = b.is_owner();
    let _: Result<bool, BufferError> = b.is_valid();
    let _: Result<(), BufferError> = b.set_valid(true);
    let _: Result<bool, BufferError> = b.set_valid_within(true, Duration::ZERO);
    let _: Result<Transaction<'_>, BufferError> = b.transaction();
    let _: Result<ParamValue, BufferError> = b.get("p");
    let _: Result<ParamValue, BufferError> = b.get_written("p");
    let _: Result<Option<Warning>, BufferError> = b.set("p", 1.0);
    let _: Result<Option<Warning>, BufferError> = b.set("p", ParamValue::Int(1));
    let _: Result<ParamHandle, BufferError> = b.param("p");
    let _: Result<Option<Warning>, BufferError> = b.set_at(h, 1u32);
    let _: Result<ParamValue, BufferError> = b.get_at(h);
    let _: Result<Option<Warning>, BufferError> = b.write_at(h, true);
    let _: Result<Option<Warning>, BufferError> = b.write("p", "text");
    let _: Result<Option<Warning>, BufferError> = b.set_json("p", j);
    let _: Result<Option<Warning>, BufferError> = b.write_json("p", j);
    let _: Result<Json, BufferError> = b.to_json();
    let _: Result<Json, BufferError> = b.written_to_json();
    let _: fn(Buffer) = Buffer::close;
}

fn device_methods(d: &DeviceBuffer, b: Buffer, m: &Message, uid: DeviceUid) {
    let _: &Buffer = d; // Deref
    let _: fn(DeviceBuffer) -> Buffer = DeviceBuffer::into_buffer;
    let _: Result<DeviceBuffer, BufferError> = DeviceBuffer::try_from(b);
    let _: Result<DeviceUid, BufferError> = d.uid();
    let _: Result<(), BufferError> = d.set_uid(uid);
    let _: Result<u16, BufferError> = d.subscription();
    let _: Result<u16, BufferError> = d.interval();
    let _: Result<f64, BufferError> = d.last_write();
    let _: Result<f64, BufferError> = d.last_update();
    let _: Result<u16, BufferError> = d.get_read();
    let _: Result<u16, BufferError> = d.get_write();
    let _: Result<u16, BufferError> = d.get_update();
    let _: Result<PendingBits, BufferError> = d.pending();
    let _: Result<([u64; 16], [u64; 16]), BufferError> = d.metrics();
    let _: Result<(), BufferError> = d.read(Some(&["p"]));
    let _: Result<(), BufferError> = d.read(None);
    let _: Result<Vec<Message>, BufferError> = d.emit_dev_rw();
    let _: Result<Vec<Message>, BufferError> = d.emit_dev_data();
    let _: Result<Vec<Message>, BufferError> = d.emit_subscription();
    let _: Result<Message, BufferError> = d.make_sub_req(Some(&["p"]), Some(0.04));
    let _: Result<Message, BufferError> = d.make_sub_res();
    let _: Result<Option<Warning>, BufferError> = d.update(m);
    let _: u128 = uid.to_u128();
    let _: DeviceUid = DeviceUid::from_u128(0);
}

fn message_methods(m: &Message, t: MessageType) {
    let _: MessageType = m.message_type();
    let _: Vec<u8> = m.payload();
    let _: Result<Vec<u8>, MessageError> = m.to_frame();
    let _: Result<Vec<u8>, MessageError> = m.encode();
    let _: Result<Vec<u8>, MessageError> = m.encode_delimited();
    let _: Result<Message, MessageError> = Message::decode(&[]);
    let _: Result<Message, MessageError> = Message::from_frame(&[]);
    let _: Result<MessageType, MessageError> = MessageType::try_from(0x10u8);
    let _: Result<ErrorCode, MessageError> = ErrorCode::try_from(0u8);
    let _: String = t.to_string();
    let _: String = ErrorCode::Ok.to_string();
}

fn segment_methods(s: &Segment, spec: &SegmentSpec<'_>, g: &SegmentGuard<'_>, h: &HeaderInfo) {
    let _: Result<Segment, SegmentError> = Segment::new_local(spec);
    let _: Result<Segment, SegmentError> = Segment::create_shared("n", spec);
    let _: Result<Segment, SegmentError> = Segment::attach_shared("n", spec);
    let _: Result<Segment, SegmentError> = Segment::open_shared("n");
    // SAFETY: never run (this function is only compiled).
    let _: Result<Segment, SegmentError> = unsafe { Segment::from_raw(std::ptr::null_mut(), 0) };
    let _: Result<(), SegmentError> = Segment::unlink("n");
    let _: Result<Vec<String>, SegmentError> = Segment::list_shared("p");
    let _: Option<&str> = s.name();
    let _: bool = s.is_shared();
    let _: *mut u8 = s.base();
    let _: usize = s.len();
    let _: bool = s.is_empty();
    let _: *mut u8 = s.data();
    let _: usize = s.data_size();
    let _: String = s.type_name();
    let _: u64 = s.type_hash();
    let _: String = s.spec_json();
    let _: i32 = s.creator_pid();
    let _: HeaderInfo = s.header_info();
    let _: Result<SegmentGuard<'_>, SegmentError> = s.lock();
    let _: Result<Option<SegmentGuard<'_>>, SegmentError> = s.lock_timeout(Duration::ZERO);
    let _: bool = g.recovered();
    let _: &Segment = g.segment();
    let _: usize = h.total_len();
}

fn store_methods(s: &BufferStore, c: Catalog, sb: &StoredBuffer) {
    let _: StoreOptions = StoreOptions::local();
    let _: StoreOptions = StoreOptions::shared("p-");
    let _: BufferStore = BufferStore::new(c, StoreOptions::local());
    let _: &Catalog = s.catalog();
    let _: String = s.shm_name("t", 1);
    let _: Result<Arc<BufferType>, BufferError> = s.buffer_type("t");
    let _: Result<StoredBuffer, BufferError> = s.get("t", 1);
    let _: Result<Arc<DeviceBuffer>, BufferError> = s.device(1);
    let _: Vec<(String, u128)> = s.keys();
    let _: Option<StoredBuffer> = s.remove("t", 1);
    let _: Result<usize, BufferError> = s.unlink_all();
    let _: &Buffer = sb.buffer();
}

fn value_methods(v: &ParamValue, t: &ParamType, j: &Json) {
    let _: Json = v.to_json();
    let _: Result<ParamValue, ValueError> = ParamValue::from_json(t, j);
    let _: Option<f64> = v.as_f64();
    let _: String = v.to_string();
    let _: [ParamValue; 13] = [
        true.into(),
        1i8.into(),
        1i16.into(),
        1u8.into(),
        1u16.into(),
        1i64.into(),
        1u64.into(),
        1i32.into(),
        1u32.into(),
        1.0f32.into(),
        1.0f64.into(),
        "x".into(),
        vec![1u8].into(),
    ];
}

// -- the variants of every public enum, and the fields of every public struct -----

fn enums(
    e: BufferError,
    s: SegmentError,
    c: CatalogError,
    pt: ParamTypeError,
    sp: SplitError,
    me: MessageError,
    ve: ValueError,
    w: Warning,
    v: ParamValue,
    sb: StoredBuffer,
    m: Message,
) {
    match e {
        BufferError::Invalid { buffer: _ } => {}
        BufferError::UnknownParam {
            buffer: _,
            param: _,
            known: _,
        } => {}
        BufferError::NotReadable {
            buffer: _,
            param: _,
        } => {}
        BufferError::NotWriteable {
            buffer: _,
            param: _,
        } => {}
        BufferError::BadValue {
            buffer: _,
            param: _,
            source: _,
        } => {}
        BufferError::NotSmartDevice {
            buffer: _,
            operation: _,
            type_name: _,
        } => {}
        BufferError::BadMessage {
            buffer: _,
            msg_type: _,
            reason: _,
        } => {}
        BufferError::UnknownType {
            type_name: _,
            known: _,
        } => {}
        BufferError::Catalog {
            buffer: _,
            source: _,
        } => {}
        BufferError::Segment(_) => {}
        BufferError::LayoutTooLarge {
            buffer: _,
            type_size: _,
            data_size: _,
        } => {}
        BufferError::ForeignHandle { buffer: _ } => {}
        BufferError::Unavailable { reason: _ } => {}
    }
    match s {
        SegmentError::BadName { name: _, reason: _ } => {}
        SegmentError::BadSpec { name: _, reason: _ } => {}
        SegmentError::Exists { name: _ } => {}
        SegmentError::NotFound { name: _ } => {}
        SegmentError::NotInitialized { name: _ } => {}
        SegmentError::BadMagic { name: _, found: _ } => {}
        SegmentError::BadVersion { name: _, found: _ } => {}
        SegmentError::Corrupt { name: _, reason: _ } => {}
        SegmentError::BadPointer { name: _, reason: _ } => {}
        SegmentError::TypeMismatch {
            name: _,
            expected_type: _,
            expected_hash: _,
            found_type: _,
            found_hash: _,
        } => {}
        SegmentError::LockUnrecoverable { name: _ } => {}
        SegmentError::Lock { name: _, errno: _ } => {}
        SegmentError::OutOfMemory { name: _, size: _ } => {}
        SegmentError::Io {
            name: _,
            op: _,
            source: _,
        } => {}
    }
    match c {
        CatalogError::Json {
            path: _,
            line: _,
            column: _,
            message: _,
        } => {}
        CatalogError::UnknownScalar {
            type_name: _,
            param: _,
            ty: _,
            scalar: _,
        } => {}
        CatalogError::BadVectorSyntax {
            type_name: _,
            param: _,
            ty: _,
            reason: _,
        } => {}
        CatalogError::PointerType {
            type_name: _,
            param: _,
            ty: _,
        } => {}
        CatalogError::ParamTooLarge {
            type_name: _,
            param: _,
            ty: _,
        } => {}
        CatalogError::TooManyParams {
            type_name: _,
            count: _,
        } => {}
        CatalogError::ParamIdOutOfRange {
            type_name: _,
            param: _,
            id: _,
        } => {}
        CatalogError::DuplicateParamName {
            type_name: _,
            param: _,
        } => {}
        CatalogError::DuplicateParamId {
            type_name: _,
            id: _,
            first: _,
            second: _,
        } => {}
        CatalogError::InvalidBounds {
            type_name: _,
            param: _,
            lower: _,
            upper: _,
        } => {}
        CatalogError::DuplicateDeviceId {
            device_id: _,
            first: _,
            second: _,
        } => {}
        CatalogError::DuplicateTypeName { type_name: _ } => {}
    }
    match pt {
        ParamTypeError::UnknownScalar(_)
        | ParamTypeError::BadVectorSyntax(_)
        | ParamTypeError::Pointer
        | ParamTypeError::TooLarge => {}
    }
    match sp {
        SplitError::NoSuchId {
            type_name: _,
            id: _,
        } => {}
        SplitError::NotInBlock {
            param: _,
            id: _,
            needs: _,
        } => {}
        SplitError::Length {
            bitmap: _,
            needed: _,
            found: _,
        } => {}
    }
    match me {
        MessageError::PayloadTooLong { len: _ } => {}
        MessageError::StrayZero { offset: _ } => {}
        MessageError::BadCobs { reason: _ } => {}
        MessageError::Truncated {
            needed: _,
            found: _,
        } => {}
        MessageError::OverLong {
            expected: _,
            found: _,
        } => {}
        MessageError::BadChecksum {
            expected: _,
            found: _,
        } => {}
        MessageError::UnknownType(_) => {}
        MessageError::BadPayloadLength {
            msg_type: _,
            min: _,
            max: _,
            found: _,
        } => {}
        MessageError::UnknownErrorCode(_) => {}
    }
    match ve {
        ValueError::Shape {
            expected: _,
            found: _,
        } => {}
        ValueError::OutOfRange {
            value: _,
            scalar: _,
            min: _,
            max: _,
        } => {}
        ValueError::TextTooLong {
            len: _,
            capacity: _,
        } => {}
        ValueError::BadFloat { value: _ } => {}
    }
    match w {
        Warning::Clamped {
            param: _,
            value: _,
            bound: Bound::Lower | Bound::Upper,
            limit: _,
            count: _,
        } => {}
        Warning::IntervalClamped {
            requested_ms: _,
            granted_ms: _,
        } => {}
    }
    match v {
        ParamValue::Bool(_)
        | ParamValue::Int(_)
        | ParamValue::UInt(_)
        | ParamValue::Float(_)
        | ParamValue::Text(_)
        | ParamValue::List(_) => {}
    }
    match sb {
        StoredBuffer::Plain(_) | StoredBuffer::Device(_) => {}
    }
    match m {
        Message::Ping => {}
        Message::SubReq {
            params: _,
            interval_ms: _,
        } => {}
        Message::SubRes {
            params: _,
            interval_ms: _,
            device_id: _,
            year: _,
            random: _,
        } => {}
        Message::DevRead { params: _ } => {}
        Message::DevWrite {
            bitmap: _,
            values: _,
        } => {}
        Message::DevData {
            bitmap: _,
            values: _,
        } => {}
        Message::DevDisable => {}
        Message::HbReq { id: _ } => {}
        Message::HbRes { id: _ } => {}
        Message::Error { code: _ } => {}
    }
}

fn unit_enums(t: MessageType, code: ErrorCode, s: Scalar) {
    match t {
        MessageType::Ping
        | MessageType::SubReq
        | MessageType::SubRes
        | MessageType::DevRead
        | MessageType::DevWrite
        | MessageType::DevData
        | MessageType::DevDisable
        | MessageType::HbReq
        | MessageType::HbRes
        | MessageType::Error => {}
    }
    match code {
        ErrorCode::Ok
        | ErrorCode::Backoff
        | ErrorCode::InvalidType
        | ErrorCode::BufferOverflow
        | ErrorCode::UnexpectedDelimiter
        | ErrorCode::BadChecksum
        | ErrorCode::GenericError => {}
    }
    match s {
        Scalar::Bool
        | Scalar::Char
        | Scalar::Byte
        | Scalar::UByte
        | Scalar::Short
        | Scalar::UShort
        | Scalar::Int
        | Scalar::UInt
        | Scalar::Long
        | Scalar::ULong
        | Scalar::LongLong
        | Scalar::ULongLong
        | Scalar::Int8
        | Scalar::Int16
        | Scalar::Int32
        | Scalar::Int64
        | Scalar::UInt8
        | Scalar::UInt16
        | Scalar::UInt32
        | Scalar::UInt64
        | Scalar::Float
        | Scalar::Double
        | Scalar::SizeT
        | Scalar::SSizeT => {}
    }
}

fn structs(
    p: Param,
    t: DeviceType,
    pt: ParamType,
    l: Layout,
    h: HeaderInfo,
    o: StoreOptions,
    pb: PendingBits,
    uid: DeviceUid,
) {
    let Param {
        name: _,
        ty: _,
        id: _,
        lower: _,
        upper: _,
        readable: _,
        writeable: _,
        subscribed: _,
    } = p;
    let DeviceType {
        name: _,
        device_id: _,
        sub_interval: _,
        write_interval: _,
        heartbeat_interval: _,
        params: _,
    } = t;
    let ParamType { scalar: _, dims: _ } = pt;
    let Layout {
        size: _,
        align: _,
        valid_flag_offset: _,
        update_block,
        write_block: _,
        control_offset: _,
        metrics_offset: _,
    } = l;
    let BlockLayout {
        offset: _,
        size: _,
        align: _,
        fields,
    } = update_block;
    for FieldLayout {
        name: _,
        offset: _,
        size: _,
        align: _,
        c_type: _,
    } in fields
    {}
    let HeaderInfo {
        version: _,
        header_size: _,
        data_offset: _,
        data_size: _,
        type_hash: _,
        spec_offset: _,
        spec_len: _,
        type_name: _,
        creator_pid: _,
    } = h;
    let StoreOptions {
        shared: _,
        prefix: _,
    } = o;
    let PendingBits {
        read: _,
        write: _,
        update: _,
    } = pb;
    let DeviceUid {
        device_id: _,
        year: _,
        random: _,
    } = uid;
    let _ = SegmentSpec {
        type_name: "t",
        type_hash: 0,
        data_size: 0,
        data_align: 1,
        spec_json: "{}",
    };
}

// -- what the SDK itself offers around buffers ------------------------------------

/// A buffer error converts into a route's error (`?` in a route).
fn route_error(e: BufferError) -> bitstream_sdk::Error {
    e.into()
}

/// `ctx.buffer()` answers an SDK 1.1 `Buffer`.
fn subcontroller_buffer<B: bitstream_sdk::IpBlock>(
    ctx: &bitstream_sdk::Subcontroller<'_, B>,
) -> Result<Buffer, BufferError> {
    ctx.buffer()
}

/// The SDK's copies of the items are the buffer crate's (one type, not two).
fn same_items(b: bitstream_buffer::device::Buffer) -> buffer::device::Buffer {
    b
}

#[test]
fn every_sdk_1_1_buffer_path_compiles() {
    // The module compiling is the test; check a few values too.
    assert_eq!(SEGMENT_DATA_OFFSET, 192);
    assert_eq!(control_offsets::LAST_UPDATE, 40);
    assert_eq!(MessageType::SubRes.payload_len(), (15, 15));
    let catalog = Catalog::from_json(r#"{"t": {"params": [{"name": "p", "type": "double"}]}}"#)
        .expect("the catalog parses");
    let ty = Arc::new(BufferType::from_catalog(&catalog, "t").expect("the type exists"));
    let b = Buffer::new_local(&ty).expect("a local buffer");
    b.set("p", 0.5).expect("set");
    assert_eq!(b.get("p").expect("get"), ParamValue::Float(0.5));
}
