//! Bounds-checked cursor over a de-obfuscated body (after rustls' `codec::Reader`).
//! Fields come out as `Bytes` slices of the body: no copies, one refcount each.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};

pub(crate) struct Reader<'a> {
    body: &'a Bytes,
    pos: usize,
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a Bytes, packet: &'static str) -> Self {
        Reader { body, pos: 0, packet }
    }

    /// Check that the fixed part is there before reading it field by field.
    pub(crate) fn need_fixed(&self, n: usize) -> Result<(), DecodeError> {
        if self.body.len() < n {
            return Err(DecodeError::Truncated {
                what: self.packet,
                need: n,
                have: self.body.len(),
            });
        }
        Ok(())
    }

    /// Check that the variable fields announced by the fixed part fill the body
    /// exactly (RFC 8907 §4.5: this is the wrong-key check).
    pub(crate) fn expect_remaining(&self, declared: usize) -> Result<(), DecodeError> {
        let actual = self.body.len() - self.pos;
        if declared > actual {
            return Err(DecodeError::FieldsOverflow {
                packet: self.packet,
                declared: self.pos + declared,
                actual: self.body.len(),
            });
        }
        if declared < actual {
            return Err(DecodeError::TrailingBytes {
                packet: self.packet,
                trailing: actual - declared,
            });
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.body.get(self.pos).ok_or(DecodeError::Truncated {
            what: self.packet,
            need: self.pos + 1,
            have: self.body.len(),
        })?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.raw(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.body.len()).ok_or(
            DecodeError::FieldsOverflow {
                packet: self.packet,
                declared: self.pos.saturating_add(n),
                actual: self.body.len(),
            },
        )?;
        let s = &self.body[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A zero-copy slice of the next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.raw(n)?;
        Ok(self.body.slice(start..self.pos))
    }

    /// `n` one-byte lengths (the arg_len array), borrowed.
    pub(crate) fn lens(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.raw(n)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        let trailing = self.body.len() - self.pos;
        if trailing != 0 {
            return Err(DecodeError::TrailingBytes { packet: self.packet, trailing });
        }
        Ok(())
    }
}

pub(crate) fn len_u8(field: &'static str, b: &[u8]) -> Result<u8, EncodeError> {
    u8::try_from(b.len()).map_err(|_| EncodeError::FieldTooLong {
        field,
        len: b.len(),
        max: u8::MAX as usize,
    })
}

pub(crate) fn len_u16(field: &'static str, b: &[u8]) -> Result<u16, EncodeError> {
    u16::try_from(b.len()).map_err(|_| EncodeError::FieldTooLong {
        field,
        len: b.len(),
        max: u16::MAX as usize,
    })
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.put_u16(v);
}
