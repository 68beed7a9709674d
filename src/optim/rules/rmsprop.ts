import { defineRule } from '../rule.js';

/** rmsprop: s = ρ·s + (1−ρ)·g²;  w −= lr·g/(√s + eps)   (ρ = train.rms_decay) */
export const rmsprop = defineRule({
  name: 'rmsprop',
  buffers: ['s'],
  step({ w, g, lr, decay, mask, hp, buf }) {
    const n = w.length; // the loop bound from the array itself (see RuleStep.w)
    const s = buf.s, rho = hp.rms_decay, c = 1 - rho, eps = hp.eps;
    for (let i = 0; i < n; i++) {
      const gi = g[i];
      const si = rho * s[i] + c * gi * gi;
      s[i] = si;
      const wi = w[i];
      const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
      w[i] = wi - d - (lr * gi) / (Math.sqrt(si) + eps);
    }
  },
});
