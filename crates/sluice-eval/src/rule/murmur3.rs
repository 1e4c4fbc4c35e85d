//! MurmurHash3 x86 32-bit (seed 0), the hash of flagd's `fractional` and of Sluice's rollout
//! buckets, over byte slices and over the concatenation of two slices without copying them.
//!
//! Why not the `murmur3` crate, which this replaced: it hashes through `std::io::Read`, four
//! bytes per `read` call and a `memcpy` each, so one bucket key of 30 bytes cost about 420
//! instructions, and the caller first copied `flagKey + targetingKey` into a buffer. This
//! reads the slices in place (about a third of the instructions for the same key) and is
//! checked against the crate on arbitrary input (the crate stays a dev-dependency for that).

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3 x86 32-bit of `bytes`, seed 0.
pub(crate) fn murmur3_32(bytes: &[u8]) -> u32 {
    let mut h = Murmur3::default();
    h.write(bytes);
    h.finish()
}

/// MurmurHash3 x86 32-bit of `a ++ b`, seed 0, without joining them.
pub(crate) fn murmur3_32_concat(a: &[u8], b: &[u8]) -> u32 {
    let mut h = Murmur3::default();
    h.write(a);
    h.write(b);
    h.finish()
}

fn mix(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

/// The hash state over input given in pieces (a `cat` bucket key is hashed piece by piece,
/// never joined).
#[derive(Default)]
pub(crate) struct Murmur3 {
    h: u32,
    /// Bytes of an unfinished 4-byte block, little-endian; `tail_len` of them.
    tail: u32,
    tail_len: u32,
    /// Input length modulo 2^32, as the reference mixes it in.
    len: u32,
}

impl Murmur3 {
    fn block(&mut self, k: u32) {
        self.h = (self.h ^ mix(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        // INVARIANT: only the low 32 bits of the length enter the hash (the reference's
        // `uint32_t len`), so truncating is the algorithm, not a loss.
        self.len = self.len.wrapping_add(bytes.len() as u32);
        while self.tail_len > 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
            bytes = rest;
            if self.tail_len == 4 {
                let k = self.tail;
                self.block(k);
                self.tail = 0;
                self.tail_len = 0;
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for c in &mut blocks {
            self.block(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        for &b in blocks.remainder() {
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
        }
    }

    pub(crate) fn finish(self) -> u32 {
        let mut h = self.h;
        if self.tail_len > 0 {
            h ^= mix(self.tail);
        }
        h ^= self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(bytes: &[u8]) -> u32 {
        let mut reader = bytes;
        murmur3::murmur3_32(&mut reader, 0).unwrap_or(0)
    }

    // The published vectors are checked through the public `bucketing::murmur3_32`
    // (tests/it/props.rs, `murmur3_reference_vectors`).

    proptest! {
        #[test]
        fn matches_the_reference_crate(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(murmur3_32(&bytes), reference(&bytes));
        }

        #[test]
        fn any_split_hashes_as_the_whole(bytes in prop::collection::vec(any::<u8>(), 0..40), at in 0usize..41) {
            let at = at.min(bytes.len());
            let (a, b) = bytes.split_at(at);
            prop_assert_eq!(murmur3_32_concat(a, b), reference(&bytes));
        }
    }
}
