//! The 4x4 (1/2-scale) IDCT on SSE4.1: the scalar kernel of `idct.rs`, lane for lane.
//!
//! Both passes do exactly the scalar kernel's 32-bit wrapping arithmetic, four columns
//! (then four rows) at a time, so the output is bit-identical to the scalar one; the
//! tests below hold it to that on random blocks.

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// One row of four dequantized coefficients, widened to 32 bits.
#[inline]
#[target_feature(enable = "sse4.1")]
unsafe fn dequantized_row(
    coefficients: &[i16; 64],
    quantization_table: &[u16; 64],
    row: usize,
) -> __m128i {
    let c = &coefficients[8 * row..8 * row + 4];
    let q = &quantization_table[8 * row..8 * row + 4];
    let c = _mm_cvtepi16_epi32(_mm_loadl_epi64(c.as_ptr() as *const __m128i));
    let q = _mm_cvtepu16_epi32(_mm_loadl_epi64(q.as_ptr() as *const __m128i));
    _mm_mullo_epi32(c, q)
}

#[inline]
#[target_feature(enable = "sse4.1")]
unsafe fn transpose(a: __m128i, b: __m128i, c: __m128i, d: __m128i) -> [__m128i; 4] {
    let ab_lo = _mm_unpacklo_epi32(a, b);
    let cd_lo = _mm_unpacklo_epi32(c, d);
    let ab_hi = _mm_unpackhi_epi32(a, b);
    let cd_hi = _mm_unpackhi_epi32(c, d);
    [
        _mm_unpacklo_epi64(ab_lo, cd_lo),
        _mm_unpackhi_epi64(ab_lo, cd_lo),
        _mm_unpacklo_epi64(ab_hi, cd_hi),
        _mm_unpackhi_epi64(ab_hi, cd_hi),
    ]
}

/// See `idct::dequantize_and_idct_block_4x4`.
#[target_feature(enable = "sse4.1")]
pub unsafe fn dequantize_and_idct_block_4x4(
    coefficients: &[i16; 64],
    quantization_table: &[u16; 64],
    output_linestride: usize,
    output: &mut [u8],
) {
    // Checked once here, so the four row stores below cannot go out of bounds.
    assert!(output.len() >= 3 * output_linestride + 4);
    let c1 = _mm_set1_epi32(super::super::idct::F2F_0_541196100);
    let c2 = _mm_set1_epi32(super::super::idct::F2F_M1_847759065);
    let c3 = _mm_set1_epi32(super::super::idct::F2F_0_765366865);

    // Columns, each lane one of the four columns.
    let s0 = dequantized_row(coefficients, quantization_table, 0);
    let s1 = dequantized_row(coefficients, quantization_table, 1);
    let s2 = dequantized_row(coefficients, quantization_table, 2);
    let s3 = dequantized_row(coefficients, quantization_table, 3);
    let x0 = _mm_slli_epi32::<2>(_mm_add_epi32(s0, s2));
    let x2 = _mm_slli_epi32::<2>(_mm_sub_epi32(s0, s2));
    let p1 = _mm_mullo_epi32(_mm_add_epi32(s1, s3), c1);
    let round = _mm_set1_epi32(512);
    let t0 = _mm_srai_epi32::<10>(_mm_add_epi32(
        _mm_add_epi32(p1, _mm_mullo_epi32(s3, c2)),
        round,
    ));
    let t2 = _mm_srai_epi32::<10>(_mm_add_epi32(
        _mm_add_epi32(p1, _mm_mullo_epi32(s1, c3)),
        round,
    ));
    let r0 = _mm_add_epi32(x0, t2);
    let r1 = _mm_add_epi32(x2, t0);
    let r2 = _mm_sub_epi32(x2, t0);
    let r3 = _mm_sub_epi32(x0, t2);

    // Rows, each lane one of the four rows.
    let [s0, s1, s2, s3] = transpose(r0, r1, r2, r3);
    let bias = _mm_set1_epi32((1 << 16) + (128 << 17));
    let x0 = _mm_add_epi32(_mm_slli_epi32::<12>(_mm_add_epi32(s0, s2)), bias);
    let x2 = _mm_add_epi32(_mm_slli_epi32::<12>(_mm_sub_epi32(s0, s2)), bias);
    let p1 = _mm_mullo_epi32(_mm_add_epi32(s1, s3), c1);
    let t0 = _mm_add_epi32(p1, _mm_mullo_epi32(s3, c2));
    let t2 = _mm_add_epi32(p1, _mm_mullo_epi32(s1, c3));
    let o0 = _mm_srai_epi32::<17>(_mm_add_epi32(x0, t2));
    let o1 = _mm_srai_epi32::<17>(_mm_add_epi32(x2, t0));
    let o2 = _mm_srai_epi32::<17>(_mm_sub_epi32(x2, t0));
    let o3 = _mm_srai_epi32::<17>(_mm_sub_epi32(x0, t2));

    // Back to rows; the two saturating packs are the scalar kernel's clamp to 0..=255.
    let [row0, row1, row2, row3] = transpose(o0, o1, o2, o3);
    let bytes = _mm_packus_epi16(_mm_packs_epi32(row0, row1), _mm_packs_epi32(row2, row3));
    let mut pixels = [0u8; 16];
    _mm_storeu_si128(pixels.as_mut_ptr() as *mut __m128i, bytes);
    for (row, four) in pixels.chunks_exact(4).enumerate() {
        let start = row * output_linestride;
        output[start..start + 4].copy_from_slice(four);
    }
}

#[cfg(test)]
mod tests {
    /// Bit for bit the scalar kernel, on blocks from tiny to saturating coefficients.
    #[test]
    fn matches_the_scalar_4x4() {
        if !std::is_x86_feature_detected!("sse4.1") {
            return;
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..50_000 {
            let range: i64 = match round % 4 {
                0 => 16,
                1 => 256,
                2 => 2048,
                _ => 65536,
            };
            let mut coefficients = [0i16; 64];
            let mut table = [0u16; 64];
            for k in 0..64 {
                coefficients[k] = ((next() as i64 % range) - range / 2).clamp(-32768, 32767) as i16;
                table[k] = if round % 5 == 0 {
                    (next() % 65536) as u16
                } else {
                    (next() % 100 + 1) as u16
                };
            }
            let stride = 4 + (round % 3) * 5;
            let mut scalar = vec![0u8; 3 * stride + 4];
            let mut simd = vec![0u8; 3 * stride + 4];
            crate::decode::idct::dequantize_and_idct_block_4x4_scalar(
                &coefficients,
                &table,
                stride,
                &mut scalar,
            );
            unsafe {
                super::dequantize_and_idct_block_4x4(&coefficients, &table, stride, &mut simd)
            };
            assert_eq!(scalar, simd, "round {round}");
        }
    }
}
