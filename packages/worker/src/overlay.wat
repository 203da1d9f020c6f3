;; The heatmap overlay's default blend (alpha 0.5) in WebAssembly with 128-bit SIMD, one image
;; row per call (overlay-kernel.ts, blendRows). Compiled by `npm run wasm:build` into overlay-wasm.ts;
;; a test checks that file is this source, compiled.
;;
;; Per pixel it computes exactly what the JavaScript overlay computes: heat = float32(top·(1 − fy)
;; + bottom·fy) in float64 (WebAssembly never fuses a multiply and an add), level = trunc(heat·255
;; + 0.5), then the Turbo colour of that level averaged with the pixel, (pixel + colour + 1) >> 1
;; per byte, which is i8x16.avgr_u sixteen bytes at a time.
;;
;; Memory, laid out by the caller: bytes 0–1023 hold Turbo as one word per level (red | green << 8
;; | blue << 16); `top` and `bottom` are float64 rows of the grid interpolated along x; `colour` is
;; scratch of at least 3·width + 16 bytes; `pixels` is the row of RGB bytes, blended in place.
(module
  (memory (export "memory") 1)

  (func (export "blendRow")
    (param $top i32) (param $bottom i32) (param $fy f64) (param $colour i32) (param $pixels i32)
    (param $width i32)
    (local $fTop f64) (local $fTop2 v128) (local $fy2 v128) (local $levels v128)
    (local $pairsEnd i32) (local $out i32) (local $c i32) (local $end i32) (local $end16 i32)
    (local.set $fTop (f64.sub (f64.const 1) (local.get $fy)))
    (local.set $fTop2 (f64x2.splat (local.get $fTop)))
    (local.set $fy2 (f64x2.splat (local.get $fy)))
    (local.set $out (local.get $colour))

    ;; Colours, two pixels per step. Each colour is stored as a 4-byte word 3 bytes after the last:
    ;; its fourth byte is overwritten by the next pixel (or lands in the scratch's spare bytes).
    (local.set $pairsEnd
      (i32.add (local.get $top) (i32.shl (i32.and (local.get $width) (i32.const -2)) (i32.const 3))))
    (block $pairsDone
      (loop $pair
        (br_if $pairsDone (i32.ge_u (local.get $top) (local.get $pairsEnd)))
        (local.set $levels
          (i32x4.shl
            (i32x4.trunc_sat_f64x2_s_zero
              (f64x2.add
                (f64x2.mul
                  (f64x2.promote_low_f32x4
                    (f32x4.demote_f64x2_zero
                      (f64x2.add
                        (f64x2.mul (v128.load (local.get $top)) (local.get $fTop2))
                        (f64x2.mul (v128.load (local.get $bottom)) (local.get $fy2)))))
                  (f64x2.splat (f64.const 255)))
                (f64x2.splat (f64.const 0.5))))
            (i32.const 2)))
        (i32.store (local.get $out) (i32.load (i32x4.extract_lane 0 (local.get $levels))))
        (i32.store offset=3 (local.get $out) (i32.load (i32x4.extract_lane 1 (local.get $levels))))
        (local.set $top (i32.add (local.get $top) (i32.const 16)))
        (local.set $bottom (i32.add (local.get $bottom) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 6)))
        (br $pair)))
    ;; The last pixel of an odd-width row.
    (if (i32.and (local.get $width) (i32.const 1))
      (then
        (i32.store (local.get $out)
          (i32.load
            (i32.shl
              (i32.trunc_sat_f64_s
                (f64.add
                  (f64.mul
                    (f64.promote_f32
                      (f32.demote_f64
                        (f64.add
                          (f64.mul (f64.load (local.get $top)) (local.get $fTop))
                          (f64.mul (f64.load (local.get $bottom)) (local.get $fy)))))
                    (f64.const 255))
                  (f64.const 0.5)))
              (i32.const 2))))))

    ;; Blend: sixteen bytes at a time, then the row's last bytes one by one.
    (local.set $c (local.get $colour))
    (local.set $end (i32.add (local.get $pixels) (i32.mul (local.get $width) (i32.const 3))))
    (local.set $end16
      (i32.add (local.get $pixels) (i32.and (i32.mul (local.get $width) (i32.const 3)) (i32.const -16))))
    (block $wideDone
      (loop $wide
        (br_if $wideDone (i32.ge_u (local.get $pixels) (local.get $end16)))
        (v128.store (local.get $pixels)
          (i8x16.avgr_u (v128.load (local.get $pixels)) (v128.load (local.get $c))))
        (local.set $pixels (i32.add (local.get $pixels) (i32.const 16)))
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $wide)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $pixels) (local.get $end)))
        (i32.store8 (local.get $pixels)
          (i32.shr_u
            (i32.add
              (i32.add (i32.load8_u (local.get $pixels)) (i32.load8_u (local.get $c)))
              (i32.const 1))
            (i32.const 1)))
        (local.set $pixels (i32.add (local.get $pixels) (i32.const 1)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $tail))))
)
