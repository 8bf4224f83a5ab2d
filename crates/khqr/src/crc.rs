//! The two checksums around a KHQR: the CRC inside the string (tag 63) and
//! the md5 of the whole string that identifies a payment at Bakong.

use md5::{Digest, Md5};

const CRC16_CCITT_FALSE: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// The md5 of a whole KHQR string (its UTF-8 bytes, CRC included), as 32
/// lowercase hex characters.
pub fn md5_hex(qr: &str) -> String {
    let digest = Md5::digest(qr.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-16/CCITT-FALSE of `payload` (which ends with `6304`), as 4 uppercase
/// hex characters.
pub fn crc_hex(payload: &str) -> String {
    format!("{:04X}", CRC16_CCITT_FALSE.checksum(payload.as_bytes()))
}

/// Whether `s` is a well-formed md5: 32 lowercase hex characters.
pub fn is_md5(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
