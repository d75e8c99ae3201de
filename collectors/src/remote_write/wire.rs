//! A small protobuf reader over a borrowed buffer: strings come out as
//! `&str` pointing into the (decompressed) request, so decoding a remote
//! write request allocates nothing per label.
//!
//! It accepts what prost accepts and refuses what prost refuses (the
//! remote-write decoder is property-tested against prost's): varints of at
//! most 10 bytes (the 10th byte at most 1), keys within `u32`, field number
//! ≥ 1, wire types 0 to 5; unknown fields of every wire type are skipped,
//! groups included (nested groups count against prost's recursion limit of
//! 100); repeated scalars packed or not; strings must be UTF-8; a known field
//! with the wrong wire type is an error; a non-repeated field seen twice keeps
//! the last value (an embedded message seen twice is merged by the caller).

use std::borrow::Cow;
use std::fmt;

/// prost's recursion limit: the top-level message has this budget, each
/// nested message or group one less.
pub(crate) const RECURSION_LIMIT: u32 = 100;

/// Protobuf wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    SixtyFourBit,
    LengthDelimited,
    StartGroup,
    EndGroup,
    ThirtyTwoBit,
}

/// Why the bytes are not a valid message, and where (byte offset in the
/// decompressed request, when it is about one place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    pub offset: Option<usize>,
    pub reason: Cow<'static, str>,
}

impl WireError {
    /// A rule of the message broken, not at one place.
    pub fn rule(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            offset: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(at) => write!(f, "{} (at byte {at})", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

pub(crate) type WireResult<T> = Result<T, WireError>;

/// A cursor over one message's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole request, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// No more fields.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error at the current position.
    #[cold]
    pub fn error(&self, reason: impl Into<Cow<'static, str>>) -> WireError {
        WireError {
            offset: Some(self.base + self.pos),
            reason: reason.into(),
        }
    }

    /// A base-128 varint (at most 10 bytes, the 10th at most 1, as prost).
    #[inline]
    pub fn varint(&mut self) -> WireResult<u64> {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        if let Some(&b) = rest.first()
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let mut value: u64 = 0;
        for (i, &b) in rest.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        Err(self.error("invalid varint"))
    }

    /// A field key: (field number, wire type).
    #[inline]
    pub fn key(&mut self) -> WireResult<(u32, WireType)> {
        let start = self.pos;
        let key = self.varint()?;
        let fail = |r: &Self, reason: String| {
            let mut e = r.error(reason);
            e.offset = Some(r.base + start);
            e
        };
        if key > u64::from(u32::MAX) {
            return Err(fail(self, format!("invalid key value: {key}")));
        }
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::SixtyFourBit,
            2 => WireType::LengthDelimited,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::ThirtyTwoBit,
            n => return Err(fail(self, format!("invalid wire type value: {n}"))),
        };
        let field = (key as u32) >> 3;
        if field == 0 {
            return Err(fail(self, "invalid tag value: 0".into()));
        }
        Ok((field, wire_type))
    }

    fn expect(&self, actual: WireType, expected: WireType) -> WireResult<()> {
        if actual == expected {
            Ok(())
        } else {
            Err(self.error(format!(
                "invalid wire type: {actual:?} (expected {expected:?})"
            )))
        }
    }

    fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error("buffer underflow"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn fixed64(&mut self) -> WireResult<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn len_delimited(&mut self) -> WireResult<&'a [u8]> {
        let len = self.varint()?;
        if len > self.remaining() as u64 {
            return Err(self.error("buffer underflow"));
        }
        self.take(len as usize)
    }

    /// `double`.
    #[inline]
    pub fn double(&mut self, wt: WireType) -> WireResult<f64> {
        self.expect(wt, WireType::SixtyFourBit)?;
        Ok(f64::from_bits(self.fixed64()?))
    }

    /// `int64` (and `uint64` reinterpreted).
    #[inline]
    pub fn int64(&mut self, wt: WireType) -> WireResult<i64> {
        self.expect(wt, WireType::Varint)?;
        Ok(self.varint()? as i64)
    }

    /// `uint64`.
    #[inline]
    pub fn uint64(&mut self, wt: WireType) -> WireResult<u64> {
        self.expect(wt, WireType::Varint)?;
        self.varint()
    }

    /// `int32` and enums (truncating, as prost).
    #[inline]
    pub fn int32(&mut self, wt: WireType) -> WireResult<i32> {
        self.expect(wt, WireType::Varint)?;
        Ok(self.varint()? as i32)
    }

    /// `uint32` (truncating, as prost).
    #[inline]
    pub fn uint32(&mut self, wt: WireType) -> WireResult<u32> {
        self.expect(wt, WireType::Varint)?;
        Ok(self.varint()? as u32)
    }

    /// `sint32` (zigzag).
    #[inline]
    pub fn sint32(&mut self, wt: WireType) -> WireResult<i32> {
        self.expect(wt, WireType::Varint)?;
        Ok(zigzag32(self.varint()? as u32))
    }

    /// `string`, borrowed, UTF-8 checked.
    #[inline]
    pub fn string(&mut self, wt: WireType) -> WireResult<&'a str> {
        self.expect(wt, WireType::LengthDelimited)?;
        let start = self.pos;
        let b = self.len_delimited()?;
        std::str::from_utf8(b).map_err(|_| {
            let mut e = self.error("invalid string value: data is not UTF-8 encoded");
            e.offset = Some(self.base + start);
            e
        })
    }

    /// An embedded message, as a reader of its own bytes. `depth` is the
    /// recursion budget of the message being read (the embedded one gets
    /// one less, and must get at least one).
    #[inline]
    pub fn message(&mut self, wt: WireType, depth: u32) -> WireResult<Reader<'a>> {
        self.expect(wt, WireType::LengthDelimited)?;
        if depth <= 1 {
            return Err(self.error("recursion limit reached"));
        }
        let b = self.len_delimited()?;
        Ok(Reader {
            buf: b,
            pos: 0,
            base: self.base + self.pos - b.len(),
        })
    }

    /// A repeated varint field, packed or not: calls `f` with each value.
    #[inline]
    pub fn repeated_varint(&mut self, wt: WireType, mut f: impl FnMut(u64)) -> WireResult<()> {
        if wt == WireType::LengthDelimited {
            let b = self.len_delimited()?;
            let mut packed = Reader {
                buf: b,
                pos: 0,
                base: self.base + self.pos - b.len(),
            };
            while !packed.is_empty() {
                f(packed.varint()?);
            }
            Ok(())
        } else {
            self.expect(wt, WireType::Varint)?;
            f(self.varint()?);
            Ok(())
        }
    }

    /// A repeated `double` field, packed or not.
    #[inline]
    pub fn repeated_double(&mut self, wt: WireType, mut f: impl FnMut(f64)) -> WireResult<()> {
        if wt == WireType::LengthDelimited {
            let b = self.len_delimited()?;
            if !b.len().is_multiple_of(8) {
                return Err(self.error(format!(
                    "packed doubles of {} bytes, not a multiple of 8",
                    b.len()
                )));
            }
            for c in b.chunks_exact(8) {
                f(f64::from_le_bytes(c.try_into().expect("8 bytes")));
            }
            Ok(())
        } else {
            self.expect(wt, WireType::SixtyFourBit)?;
            f(f64::from_bits(self.fixed64()?));
            Ok(())
        }
    }

    /// Skip a field this reader does not know (any wire type; groups are
    /// skipped up to their matching end).
    pub fn skip(&mut self, wt: WireType, field: u32, depth: u32) -> WireResult<()> {
        if depth == 0 {
            return Err(self.error("recursion limit reached"));
        }
        match wt {
            WireType::Varint => {
                self.varint()?;
            }
            WireType::SixtyFourBit => {
                self.take(8)?;
            }
            WireType::ThirtyTwoBit => {
                self.take(4)?;
            }
            WireType::LengthDelimited => {
                self.len_delimited()?;
            }
            WireType::StartGroup => loop {
                if self.is_empty() {
                    // prost reads the next key from an empty buffer
                    return Err(self.error("invalid varint"));
                }
                let (inner, inner_wt) = self.key()?;
                if inner_wt == WireType::EndGroup {
                    if inner != field {
                        return Err(self.error("unexpected end group tag"));
                    }
                    break;
                }
                self.skip(inner_wt, inner, depth - 1)?;
            },
            WireType::EndGroup => return Err(self.error("unexpected end group tag")),
        }
        Ok(())
    }
}

/// Zigzag-decode a `sint32`.
#[inline]
pub(crate) fn zigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Zigzag-decode a `sint64`.
#[inline]
pub(crate) fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    #[test]
    fn varints_as_prost() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut b = Vec::new();
            encode_varint(v, &mut b);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.is_empty());
        }
        // 11 bytes: too long
        let b = [0x80u8; 10]
            .iter()
            .chain(&[0x01])
            .copied()
            .collect::<Vec<_>>();
        assert!(Reader::new(&b).varint().is_err());
        // 10 bytes whose last byte overflows u64
        let mut b = vec![0xffu8; 9];
        b.push(0x02);
        let e = Reader::new(&b).varint().unwrap_err();
        assert_eq!(e.reason, "invalid varint");
        // truncated
        assert!(Reader::new(&[0x80, 0x80]).varint().is_err());
        assert!(Reader::new(&[]).varint().is_err());
    }

    #[test]
    fn zigzag() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            let enc = ((v << 1) ^ (v >> 63)) as u64;
            assert_eq!(zigzag64(enc), v);
        }
        for v in [0i32, -1, 1, i32::MIN, i32::MAX, -53] {
            let enc = ((v << 1) ^ (v >> 31)) as u32;
            assert_eq!(zigzag32(enc), v);
        }
    }

    #[test]
    fn keys() {
        let mut r = Reader::new(&[0x08]);
        assert_eq!(r.key().unwrap(), (1, WireType::Varint));
        // field 0
        assert_eq!(
            Reader::new(&[0x00]).key().unwrap_err().reason,
            "invalid tag value: 0"
        );
        // wire types 6 and 7
        assert!(Reader::new(&[0x0e]).key().is_err());
        assert!(Reader::new(&[0x0f]).key().is_err());
        // key over u32
        let mut b = Vec::new();
        encode_varint(1 << 33, &mut b);
        assert!(Reader::new(&b).key().unwrap_err().reason.contains("key"));
    }

    #[test]
    fn wrong_wire_types_and_lengths() {
        // a double read from a varint field
        let mut r = Reader::new(&[0x01]);
        let e = r.double(WireType::Varint).unwrap_err();
        assert!(e.reason.contains("invalid wire type"), "{e}");
        // a string whose length runs past the buffer
        let mut r = Reader::new(&[0x05, b'a', b'b']);
        assert_eq!(
            r.string(WireType::LengthDelimited).unwrap_err().reason,
            "buffer underflow"
        );
        // huge length
        let mut b = Vec::new();
        encode_varint(u64::MAX, &mut b);
        assert!(Reader::new(&b).string(WireType::LengthDelimited).is_err());
        // invalid UTF-8
        let mut r = Reader::new(&[0x02, 0xc3, 0x28]);
        assert!(
            r.string(WireType::LengthDelimited)
                .unwrap_err()
                .reason
                .contains("UTF-8")
        );
        // truncated double
        assert!(Reader::new(&[0; 7]).double(WireType::SixtyFourBit).is_err());
    }

    #[test]
    fn packed_and_unpacked_repeated_scalars() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Packed {
            #[prost(sint64, repeated, tag = "1")]
            d: Vec<i64>,
            #[prost(double, repeated, tag = "2")]
            f: Vec<f64>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct Unpacked {
            #[prost(sint64, repeated, packed = "false", tag = "1")]
            d: Vec<i64>,
            #[prost(double, repeated, packed = "false", tag = "2")]
            f: Vec<f64>,
        }
        let d = vec![0, -1, 5, i64::MIN, i64::MAX];
        let f = vec![0.5, -2.0, f64::INFINITY];
        let read = |b: &[u8]| {
            let mut r = Reader::new(b);
            let (mut dd, mut ff) = (Vec::new(), Vec::new());
            while !r.is_empty() {
                let (field, wt) = r.key().unwrap();
                match field {
                    1 => r.repeated_varint(wt, |v| dd.push(zigzag64(v))).unwrap(),
                    2 => r.repeated_double(wt, |v| ff.push(v)).unwrap(),
                    _ => unreachable!(),
                }
            }
            (dd, ff)
        };
        let packed = Packed {
            d: d.clone(),
            f: f.clone(),
        }
        .encode_to_vec();
        let unpacked = Unpacked {
            d: d.clone(),
            f: f.clone(),
        }
        .encode_to_vec();
        assert_ne!(packed, unpacked);
        assert_eq!(read(&packed), (d.clone(), f.clone()));
        assert_eq!(read(&unpacked), (d, f));
        // packed doubles not a multiple of 8
        let mut r = Reader::new(&[0x03, 0, 0, 0]);
        assert!(
            r.repeated_double(WireType::LengthDelimited, |_| ())
                .is_err()
        );
    }

    #[test]
    fn skips_every_wire_type_and_groups() {
        // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32,
        // field 13 group containing field 1 varint and a nested group 2, then
        // field 1 varint = 7
        let mut b = vec![0x48, 0x96, 0x01];
        b.extend([0x51, 1, 2, 3, 4, 5, 6, 7, 8]);
        b.extend([0x5a, 0x02, b'h', b'i']);
        b.extend([0x65, 1, 2, 3, 4]);
        b.extend([0x6b, 0x08, 0x01, 0x13, 0x14, 0x6c]);
        b.extend([0x08, 0x07]);
        let mut r = Reader::new(&b);
        let mut seen = None;
        while !r.is_empty() {
            let (field, wt) = r.key().unwrap();
            if field == 1 {
                seen = Some(r.int64(wt).unwrap());
            } else {
                r.skip(wt, field, RECURSION_LIMIT).unwrap();
            }
        }
        assert_eq!(seen, Some(7));
        // an end group without a start, a mismatched end, an unterminated group
        let mut r = Reader::new(&[0x0c]);
        let (f, wt) = r.key().unwrap();
        assert!(r.skip(wt, f, RECURSION_LIMIT).is_err());
        let mut r = Reader::new(&[0x0b, 0x14]);
        let (f, wt) = r.key().unwrap();
        assert!(r.skip(wt, f, RECURSION_LIMIT).is_err());
        let mut r = Reader::new(&[0x0b, 0x08, 0x01]);
        let (f, wt) = r.key().unwrap();
        assert!(r.skip(wt, f, RECURSION_LIMIT).is_err());
        // groups nested past the recursion limit
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, 200)
            .chain(std::iter::repeat_n(0x0c, 200))
            .collect();
        let mut r = Reader::new(&deep);
        let (f, wt) = r.key().unwrap();
        assert!(
            r.skip(wt, f, RECURSION_LIMIT)
                .unwrap_err()
                .reason
                .contains("recursion")
        );
    }
}
