;; The model input's Lanczos 3 downsizing in WebAssembly with 128-bit SIMD, the same integer
;; arithmetic as libvips' vips_resize (which sharp calls), so the same bytes (resample-kernel.ts
;; lays out memory and computes the tables; a test compares every size against sharp). Compiled
;; by `npm run wasm:build` into resample-wasm.ts; a test checks that file is this source, compiled.
;;
;; libvips downsizes an axis by a factor s in up to two steps: a 2:1 box shrink when s ≥ 4 (its
;; gap of 2), then a reduce by what is left, each output the sum of n input samples times 16-bit
;; fixed-point Lanczos weights (scaled by 4096), plus 2048, shifted right by 12 and clamped to
;; 0–255. Vertical steps run first: shrinkV2, reduceV, then shrinkH2, reduceH.
;;
;; Every function may read up to 16 bytes past the end of its input and write up to 16 past the
;; end of its output: the caller leaves that room.
(module
  (memory (export "memory") 1)

  ;; Output row r is the rounded mean of input rows 2r and 2r + 1: (a + b + 1) >> 1 per byte,
  ;; which is i8x16.avgr_u.
  (func (export "shrinkV2")
    (param $src i32) (param $rowBytes i32) (param $outRows i32) (param $dst i32)
    (local $x i32)
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $outRows)))
        (local.set $x (i32.const 0))
        (block $rowDone
          (loop $chunk
            (br_if $rowDone (i32.ge_u (local.get $x) (local.get $rowBytes)))
            (v128.store (i32.add (local.get $dst) (local.get $x))
              (i8x16.avgr_u
                (v128.load (i32.add (local.get $src) (local.get $x)))
                (v128.load (i32.add (i32.add (local.get $src) (local.get $rowBytes)) (local.get $x)))))
            (local.set $x (i32.add (local.get $x) (i32.const 16)))
            (br $chunk)))
        (local.set $src (i32.add (local.get $src) (i32.shl (local.get $rowBytes) (i32.const 1))))
        (local.set $dst (i32.add (local.get $dst) (local.get $rowBytes)))
        (local.set $outRows (i32.sub (local.get $outRows) (i32.const 1)))
        (br $row))))

  ;; Output pixel i is the rounded mean of RGB pixels 2i and 2i + 1, two outputs per step. Pairs
  ;; never straddle rows (the width is even), so a whole image is one run of `pairs` pairs.
  (func (export "shrinkH2") (param $src i32) (param $pairs i32) (param $dst i32)
    (local $v v128) (local $end i32)
    (local.set $end (i32.add (local.get $dst) (i32.mul (local.get $pairs) (i32.const 3))))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store64_lane 0 (local.get $dst)
          (i8x16.avgr_u
            (i8x16.shuffle 0 1 2 6 7 8 0 0 0 0 0 0 0 0 0 0 (local.get $v) (local.get $v))
            (i8x16.shuffle 3 4 5 9 10 11 0 0 0 0 0 0 0 0 0 0 (local.get $v) (local.get $v))))
        (local.set $src (i32.add (local.get $src) (i32.const 12)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 6)))
        (br $step))))

  ;; Output row y = Σᵢ weight[y·n + i] × input row at byte offset rows[y·n + i] (clamped at the
  ;; edges by the caller), sixteen bytes of the row at a time, two taps per step: the two rows'
  ;; bytes interleaved, widened to i16 and multiplied by the weight pair with i32x4.dot_i16x8_s.
  ;; n is even (the caller pads with a zero weight); weights are i16 pairs packed in an i32
  ;; (the first in the low half), offsets are i32.
  (func (export "reduceV")
    (param $src i32) (param $rowBytes i32) (param $dst i32) (param $outRows i32) (param $n i32)
    (param $weights i32) (param $rows i32)
    (local $x i32) (local $i i32) (local $w i32) (local $o i32) (local $out i32)
    (local $pair v128) (local $a v128) (local $b v128) (local $lo v128) (local $hi v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $out (local.get $dst))
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $outRows)))
        (local.set $x (i32.const 0))
        (block $rowDone
          (loop $chunk
            (br_if $rowDone (i32.ge_u (local.get $x) (local.get $rowBytes)))
            (local.set $a0 (i32x4.splat (i32.const 2048)))
            (local.set $a1 (local.get $a0))
            (local.set $a2 (local.get $a0))
            (local.set $a3 (local.get $a0))
            (local.set $w (local.get $weights))
            (local.set $o (local.get $rows))
            (local.set $i (local.get $n))
            (loop $tap
              (local.set $pair (v128.load32_splat (local.get $w)))
              (local.set $a
                (v128.load (i32.add (i32.add (local.get $src) (i32.load (local.get $o))) (local.get $x))))
              (local.set $b
                (v128.load (i32.add (i32.add (local.get $src) (i32.load offset=4 (local.get $o))) (local.get $x))))
              (local.set $lo (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $a) (local.get $b)))
              (local.set $hi (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $a) (local.get $b)))
              (local.set $a0 (i32x4.add (local.get $a0)
                (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_u (local.get $lo)) (local.get $pair))))
              (local.set $a1 (i32x4.add (local.get $a1)
                (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_u (local.get $lo)) (local.get $pair))))
              (local.set $a2 (i32x4.add (local.get $a2)
                (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_u (local.get $hi)) (local.get $pair))))
              (local.set $a3 (i32x4.add (local.get $a3)
                (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_u (local.get $hi)) (local.get $pair))))
              (local.set $w (i32.add (local.get $w) (i32.const 4)))
              (local.set $o (i32.add (local.get $o) (i32.const 8)))
              (local.set $i (i32.sub (local.get $i) (i32.const 2)))
              (br_if $tap (local.get $i)))
            ;; >> 12, then saturate to 0–255 (the narrows saturate: negative sums become 0).
            (v128.store (i32.add (local.get $out) (local.get $x))
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_s
                  (i32x4.shr_s (local.get $a0) (i32.const 12))
                  (i32x4.shr_s (local.get $a1) (i32.const 12)))
                (i16x8.narrow_i32x4_s
                  (i32x4.shr_s (local.get $a2) (i32.const 12))
                  (i32x4.shr_s (local.get $a3) (i32.const 12)))))
            (local.set $x (i32.add (local.get $x) (i32.const 16)))
            (br $chunk)))
        (local.set $out (i32.add (local.get $out) (local.get $rowBytes)))
        (local.set $weights (i32.add (local.get $weights) (i32.shl (local.get $n) (i32.const 1))))
        (local.set $rows (i32.add (local.get $rows) (i32.shl (local.get $n) (i32.const 2))))
        (local.set $outRows (i32.sub (local.get $outRows) (i32.const 1)))
        (br $row))))

  ;; Each row of `width` RGB pixels is copied into `scratch` with `padL` copies of its first pixel
  ;; before it and `padR` of its last after it (the edge pixels repeat, as libvips extends them),
  ;; then output pixel x = Σᵢ weight[x·taps + i] × scratch pixel at byte starts[x] + 3i, four taps
  ;; per step: each pair of taps is one i32x4.dot_i16x8_s of (pixel i, pixel i + 1) per channel with
  ;; the weights (i16, `taps` a multiple of 4, zero past the kernel's end). starts are i32.
  (func (export "reduceH")
    (param $src i32) (param $width i32) (param $rows i32) (param $dst i32) (param $outWidth i32)
    (param $taps i32) (param $weights i32) (param $starts i32) (param $padL i32) (param $padR i32)
    (param $scratch i32)
    (local $rowBytes i32) (local $j i32) (local $first i32) (local $last i32) (local $x i32)
    (local $p i32) (local $k i32) (local $kEnd i32) (local $v v128) (local $acc v128)
    (local.set $rowBytes (i32.mul (local.get $width) (i32.const 3)))
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $rows)))
        (local.set $first (i32.load (local.get $src)))
        (local.set $last (i32.load (i32.add (local.get $src) (i32.sub (local.get $rowBytes) (i32.const 3)))))
        (local.set $j (i32.const 0))
        (block $leftDone
          (loop $left
            (br_if $leftDone (i32.ge_u (local.get $j) (local.get $padL)))
            (i32.store (i32.add (local.get $scratch) (i32.mul (local.get $j) (i32.const 3))) (local.get $first))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $left)))
        (memory.copy
          (i32.add (local.get $scratch) (i32.mul (local.get $padL) (i32.const 3)))
          (local.get $src) (local.get $rowBytes))
        (local.set $j (i32.add (local.get $padL) (local.get $width)))
        (local.set $k (i32.add (local.get $j) (local.get $padR)))
        (block $rightDone
          (loop $right
            (br_if $rightDone (i32.ge_u (local.get $j) (local.get $k)))
            (i32.store (i32.add (local.get $scratch) (i32.mul (local.get $j) (i32.const 3))) (local.get $last))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $right)))
        (local.set $x (i32.const 0))
        (local.set $k (local.get $weights))
        (block $rowDone
          (loop $pixel
            (br_if $rowDone (i32.ge_u (local.get $x) (local.get $outWidth)))
            (local.set $p
              (i32.add (local.get $scratch) (i32.load (i32.add (local.get $starts) (i32.shl (local.get $x) (i32.const 2))))))
            (local.set $kEnd (i32.add (local.get $k) (i32.shl (local.get $taps) (i32.const 1))))
            (local.set $acc (i32x4.splat (i32.const 2048)))
            (loop $tap4
              (local.set $v (v128.load (local.get $p)))
              (local.set $acc
                (i32x4.add (local.get $acc)
                  (i32x4.dot_i16x8_s
                    (i8x16.swizzle (local.get $v)
                      (v128.const i8x16 0 128 3 128 1 128 4 128 2 128 5 128 128 128 128 128))
                    (v128.load32_splat (local.get $k)))))
              (local.set $acc
                (i32x4.add (local.get $acc)
                  (i32x4.dot_i16x8_s
                    (i8x16.swizzle (local.get $v)
                      (v128.const i8x16 6 128 9 128 7 128 10 128 8 128 11 128 128 128 128 128))
                    (v128.load32_splat offset=4 (local.get $k)))))
              (local.set $p (i32.add (local.get $p) (i32.const 12)))
              (local.set $k (i32.add (local.get $k) (i32.const 8)))
              (br_if $tap4 (i32.lt_u (local.get $k) (local.get $kEnd))))
            (local.set $acc (i32x4.shr_s (local.get $acc) (i32.const 12)))
            (local.set $acc (i16x8.narrow_i32x4_s (local.get $acc) (local.get $acc)))
            (i32.store (local.get $dst)
              (i32x4.extract_lane 0 (i8x16.narrow_i16x8_u (local.get $acc) (local.get $acc))))
            (local.set $dst (i32.add (local.get $dst) (i32.const 3)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $pixel)))
        (local.set $src (i32.add (local.get $src) (local.get $rowBytes)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $row))))
)
