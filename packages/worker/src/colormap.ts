/**
 * Google's Turbo colormap (Mikhailov, 2019) as its published degree-5 polynomial fit, sampled
 * into a 256-entry RGB lookup table once. Turbo is perceptually smoother than jet while keeping
 * its familiar blue → red reading for "low → high".
 */
function turboChannel(x: number, c: readonly number[]): number {
  const v =
    (c[0] as number) +
    x *
      ((c[1] as number) +
        x * ((c[2] as number) + x * ((c[3] as number) + x * ((c[4] as number) + x * (c[5] as number)))));
  return Math.round(Math.min(1, Math.max(0, v)) * 255);
}

const RED = [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943];
const GREEN = [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604];
const BLUE = [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973];

/** RGB triples for levels 0..255, back to back. */
export const TURBO_LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    lut[i * 3] = turboChannel(x, RED);
    lut[i * 3 + 1] = turboChannel(x, GREEN);
    lut[i * 3 + 2] = turboChannel(x, BLUE);
  }
  return lut;
})();
