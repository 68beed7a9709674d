import { defineRule } from '../rule.js';

/**
 * adam (bias corrected): m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
 *                        w −= lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + eps)
 */
export const adam = defineRule({
  name: 'adam',
  buffers: ['m', 'v'],
  step({ w, g, lr, decay, mask, t, hp, buf }) {
    const n = w.length; // the loop bound from the array itself (see RuleStep.w)
    const m = buf.m, v = buf.v;
    const b1 = hp.beta1, b2 = hp.beta2, eps = hp.eps;
    const c1 = 1 - b1, c2 = 1 - b2;
    const bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
    for (let i = 0; i < n; i++) {
      const gi = g[i];
      const mi = b1 * m[i] + c1 * gi;
      const vi = b2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const wi = w[i];
      const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
      w[i] = wi - d - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
    }
  },
});
