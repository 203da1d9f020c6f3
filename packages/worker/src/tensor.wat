;; The model input's normalisation (rgbToTensor in preprocess.ts) in WebAssembly with 128-bit
;; SIMD, four pixels per step: HWC RGB bytes in, one float32 plane per channel out, each value
;; x·scale + shift computed in float64 and rounded to float32, the same operations as the
;; JavaScript definition (WebAssembly never fuses a multiply and an add), so the same bits.
;; Compiled by `npm run wasm:build` into tensor-wasm.ts; a test checks that file is this source,
;; compiled.
;;
;; Reads up to 16 bytes past the pixels and writes up to 12 past the last plane: the caller
;; leaves that room.
(module
  (memory (export "memory") 1)

  ;; One channel's plane: `mask` picks that channel's bytes of four pixels into four u32 lanes.
  (func $plane (param $rgb i32) (param $pixels i32) (param $out i32) (param $mask v128)
    (param $scale f64) (param $shift f64)
    (local $end i32) (local $scale2 v128) (local $shift2 v128) (local $v v128)
    (local.set $scale2 (f64x2.splat (local.get $scale)))
    (local.set $shift2 (f64x2.splat (local.get $shift)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $pixels) (i32.const 2))))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $v (i8x16.swizzle (v128.load (local.get $rgb)) (local.get $mask)))
        (v128.store (local.get $out)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero
              (f64x2.add
                (f64x2.mul (f64x2.convert_low_i32x4_u (local.get $v)) (local.get $scale2))
                (local.get $shift2)))
            (f32x4.demote_f64x2_zero
              (f64x2.add
                (f64x2.mul
                  (f64x2.convert_low_i32x4_u
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 0 0 0 0 0 0 0 (local.get $v) (local.get $v)))
                  (local.get $scale2))
                (local.get $shift2)))))
        (local.set $rgb (i32.add (local.get $rgb) (i32.const 12)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $step))))

  ;; `pixels` RGB pixels at `rgb` into three float32 planes from `out`; scale and shift per
  ;; channel.
  (func (export "toPlanes") (param $rgb i32) (param $pixels i32) (param $out i32)
    (param $scale0 f64) (param $shift0 f64) (param $scale1 f64) (param $shift1 f64)
    (param $scale2 f64) (param $shift2 f64)
    (local $plane i32)
    (local.set $plane (i32.shl (local.get $pixels) (i32.const 2)))
    (call $plane (local.get $rgb) (local.get $pixels) (local.get $out)
      (v128.const i8x16 0 128 128 128 3 128 128 128 6 128 128 128 9 128 128 128)
      (local.get $scale0) (local.get $shift0))
    (call $plane (local.get $rgb) (local.get $pixels) (i32.add (local.get $out) (local.get $plane))
      (v128.const i8x16 1 128 128 128 4 128 128 128 7 128 128 128 10 128 128 128)
      (local.get $scale1) (local.get $shift1))
    (call $plane (local.get $rgb) (local.get $pixels)
      (i32.add (local.get $out) (i32.shl (local.get $plane) (i32.const 1)))
      (v128.const i8x16 2 128 128 128 5 128 128 128 8 128 128 128 11 128 128 128)
      (local.get $scale2) (local.get $shift2)))
)
