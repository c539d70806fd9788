//! The proxy's CONNECT reply as a client reads it: `head_end` over every
//! prefix never panics and never finds an end past the bound, and a head
//! it finds is judged without a panic; an accepted one is 2xx HTTP/1.
#![no_main]
use exhibit_proto::connect::{check_reply, head_end, MAX_REPLY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(2 * MAX_REPLY)];
    if let Ok(Some(end)) = head_end(data) {
        assert!(end <= MAX_REPLY && data[..end].ends_with(b"\r\n\r\n"));
        if let Ok(status) = check_reply(&data[..end]) {
            assert!((200..300).contains(&status));
            assert!(data.starts_with(b"HTTP/1."));
        }
    }
    let _ = check_reply(data);
});
