//! Request and response decoding: any bytes give a value or a typed error.
#![no_main]
use exhibit_proto::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = frame::body_len([data[0], data[1], data[2], data[3]]);
    }
    if let Ok(req) = frame::decode_request(data) {
        // What decodes must encode again within the frame bound.
        let _ = frame::encode(&req);
    }
    let _ = frame::decode_response(data);
});
