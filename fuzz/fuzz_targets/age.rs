//! age files as a fetching client reads them from the server: refused with
//! a reason or opened, never a panic, and never more plaintext than the
//! buffer it was given.
#![no_main]
use exhibit_proto::seal;
use libfuzzer_sys::fuzz_target;

/// A throwaway key for the fuzzer only; the corpus holds files sealed to it.
const KEY: &str = "AGE-SECRET-KEY-1Z76RA3V6MU4R6027G4DEVVCG6MKH3HCD2QGDNFZZ32X42HYMRZGS3QJ5AH";

fuzz_target!(|data: &[u8]| {
    let Ok(id) = KEY.parse::<age::x25519::Identity>() else { return };
    let mut out = vec![0u8; 3 << 16];
    if let Ok(n) = seal::decrypt_into(data, &id, "fuzz", &mut out) {
        assert!(n <= out.len() && n < data.len());
    }
});
