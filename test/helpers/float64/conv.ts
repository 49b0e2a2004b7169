/**
 * Naive float64 references for convolution and pooling (ORT has no float64 Conv). Deliberately the textbook loops:
 * slow but obviously right, for checking ORT's float32 forward and finite differences of the backward rules.
 * 1D and 2D are handled as 3D with unit trailing axes.
 */
export interface Geom { strides?: number[]; pads?: number[]; dilations?: number[]; group?: number; outputPadding?: number[] }
export interface Arr { data: Float64Array; shape: number[] }

interface G3 { s: number[]; pb: number[]; pe: number[]; d: number[]; k: number[]; op: number[]; group: number }

function to3(xShape: readonly number[], kernel: readonly number[], geo: Geom): { g: G3; sp: number[] } {
  const nd = xShape.length - 2;
  const fill = (v: number[] | undefined, i: number, dflt: number): number => (v && i < nd ? v[i] : dflt);
  const g: G3 = {
    s: [0, 1, 2].map((i) => fill(geo.strides, i, 1)),
    pb: [0, 1, 2].map((i) => (geo.pads && i < nd ? geo.pads[i] : 0)),
    pe: [0, 1, 2].map((i) => (geo.pads && i < nd ? geo.pads[i + nd] : 0)),
    d: [0, 1, 2].map((i) => fill(geo.dilations, i, 1)),
    k: [0, 1, 2].map((i) => (i < nd ? kernel[i] : 1)),
    op: [0, 1, 2].map((i) => fill(geo.outputPadding, i, 0)),
    group: geo.group ?? 1,
  };
  return { g, sp: [0, 1, 2].map((i) => (i < nd ? xShape[i + 2] : 1)) };
}

const idx3 = (sp: readonly number[], a: number, b: number, c: number): number => (a * sp[1] + b) * sp[2] + c;

/** y = conv(x, w) + b, ONNX semantics; w: [Cout, Cin/group, k...]. */
export function conv64(x: Arr, w: Arr, b: Float64Array | null, geo: Geom): Arr {
  const nd = x.shape.length - 2;
  const { g, sp } = to3(x.shape, w.shape.slice(2), geo);
  const [n, cin] = x.shape;
  const cout = w.shape[0];
  const cg = cin / g.group;
  const og = cout / g.group;
  const o = [0, 1, 2].map((i) => Math.floor((sp[i] + g.pb[i] + g.pe[i] - g.d[i] * (g.k[i] - 1) - 1) / g.s[i]) + 1);
  const out = new Float64Array(n * cout * o[0] * o[1] * o[2]);
  const kk = g.k[0] * g.k[1] * g.k[2];
  const inSize = sp[0] * sp[1] * sp[2];
  let p = 0;
  for (let bn = 0; bn < n; bn++) for (let co = 0; co < cout; co++) {
    const grp = Math.floor(co / og);
    for (let i0 = 0; i0 < o[0]; i0++) for (let i1 = 0; i1 < o[1]; i1++) for (let i2 = 0; i2 < o[2]; i2++) {
      let acc = b ? b[co] : 0;
      for (let c = 0; c < cg; c++) {
        const ci = grp * cg + c;
        for (let k0 = 0; k0 < g.k[0]; k0++) for (let k1 = 0; k1 < g.k[1]; k1++) for (let k2 = 0; k2 < g.k[2]; k2++) {
          const j = [i0 * g.s[0] + k0 * g.d[0] - g.pb[0], i1 * g.s[1] + k1 * g.d[1] - g.pb[1], i2 * g.s[2] + k2 * g.d[2] - g.pb[2]];
          if (j.some((v, a) => v < 0 || v >= sp[a])) continue;
          acc += x.data[(bn * cin + ci) * inSize + idx3(sp, j[0], j[1], j[2])]
            * w.data[(co * cg + c) * kk + idx3(g.k, k0, k1, k2)];
        }
      }
      out[p++] = acc;
    }
  }
  return { data: out, shape: [n, cout, ...o.slice(0, nd)] };
}

/** y = convTranspose(x, w) + b, ONNX semantics; w: [Cin, Cout/group, k...]. */
export function convTranspose64(x: Arr, w: Arr, b: Float64Array | null, geo: Geom): Arr {
  const nd = x.shape.length - 2;
  const { g, sp } = to3(x.shape, w.shape.slice(2), geo);
  const [n, cin] = x.shape;
  const og = w.shape[1];
  const cout = og * g.group;
  const cg = cin / g.group;
  const o = [0, 1, 2].map((i) => g.s[i] * (sp[i] - 1) + g.op[i] + g.d[i] * (g.k[i] - 1) + 1 - g.pb[i] - g.pe[i]);
  const outSize = o[0] * o[1] * o[2];
  const out = new Float64Array(n * cout * outSize);
  for (let bn = 0; bn < n; bn++) for (let co = 0; co < cout; co++) out.fill(b ? b[co] : 0, (bn * cout + co) * outSize, (bn * cout + co + 1) * outSize);
  const kk = g.k[0] * g.k[1] * g.k[2];
  const inSize = sp[0] * sp[1] * sp[2];
  for (let bn = 0; bn < n; bn++) for (let ci = 0; ci < cin; ci++) {
    const grp = Math.floor(ci / cg);
    for (let i0 = 0; i0 < sp[0]; i0++) for (let i1 = 0; i1 < sp[1]; i1++) for (let i2 = 0; i2 < sp[2]; i2++) {
      const xv = x.data[(bn * cin + ci) * inSize + idx3(sp, i0, i1, i2)];
      for (let c = 0; c < og; c++) {
        const co = grp * og + c;
        for (let k0 = 0; k0 < g.k[0]; k0++) for (let k1 = 0; k1 < g.k[1]; k1++) for (let k2 = 0; k2 < g.k[2]; k2++) {
          const j = [i0 * g.s[0] + k0 * g.d[0] - g.pb[0], i1 * g.s[1] + k1 * g.d[1] - g.pb[1], i2 * g.s[2] + k2 * g.d[2] - g.pb[2]];
          if (j.some((v, a) => v < 0 || v >= o[a])) continue;
          out[(bn * cout + co) * outSize + idx3(o, j[0], j[1], j[2])] += xv * w.data[(ci * og + c) * kk + idx3(g.k, k0, k1, k2)];
        }
      }
    }
  }
  return { data: out, shape: [n, cout, ...o.slice(0, nd)] };
}

export interface PoolGeom64 { kernel: number[]; strides?: number[]; pads?: number[]; countIncludePad?: boolean }

/** Max or average pooling (floor mode; padded cells never win a max and count only with countIncludePad). */
export function pool64(kind: 'max' | 'avg', x: Arr, geo: PoolGeom64): Arr {
  const nd = x.shape.length - 2;
  const { g, sp } = to3(x.shape, geo.kernel, { strides: geo.strides ?? geo.kernel, pads: geo.pads });
  const [n, c] = x.shape;
  const o = [0, 1, 2].map((i) => Math.floor((sp[i] + g.pb[i] + g.pe[i] - g.k[i]) / g.s[i]) + 1);
  const out = new Float64Array(n * c * o[0] * o[1] * o[2]);
  const inSize = sp[0] * sp[1] * sp[2];
  let p = 0;
  for (let plane = 0; plane < n * c; plane++) {
    for (let i0 = 0; i0 < o[0]; i0++) for (let i1 = 0; i1 < o[1]; i1++) for (let i2 = 0; i2 < o[2]; i2++) {
      let acc = kind === 'max' ? -Infinity : 0;
      let count = 0;
      for (let k0 = 0; k0 < g.k[0]; k0++) for (let k1 = 0; k1 < g.k[1]; k1++) for (let k2 = 0; k2 < g.k[2]; k2++) {
        const j = [i0 * g.s[0] + k0 - g.pb[0], i1 * g.s[1] + k1 - g.pb[1], i2 * g.s[2] + k2 - g.pb[2]];
        if (j.some((v, a) => v < 0 || v >= sp[a])) continue;
        const v = x.data[plane * inSize + idx3(sp, j[0], j[1], j[2])];
        acc = kind === 'max' ? Math.max(acc, v) : acc + v;
        count++;
      }
      out[p++] = kind === 'max' ? acc : acc / (geo.countIncludePad ? g.k[0] * g.k[1] * g.k[2] : count);
    }
  }
  return { data: out, shape: [n, c, ...o.slice(0, nd)] };
}

export function globalAvgPool64(x: Arr): Arr {
  const [n, c, ...sp] = x.shape;
  const size = sp.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n * c);
  for (let p = 0; p < n * c; p++) {
    let s = 0;
    for (let i = 0; i < size; i++) s += x.data[p * size + i];
    out[p] = s / size;
  }
  return { data: out, shape: [n, c, ...sp.map(() => 1)] };
}
