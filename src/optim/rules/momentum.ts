import { defineRule } from '../rule.js';

/** momentum (the spec's form): v = β·v + (1−β)·g;  w −= lr·v   (β = train.momentum) */
export const momentum = defineRule({
  name: 'momentum',
  buffers: ['v'],
  step({ w, g, lr, decay, mask, hp, buf }) {
    const n = w.length; // the loop bound from the array itself (see RuleStep.w)
    const v = buf.v, beta = hp.momentum, c = 1 - beta;
    for (let i = 0; i < n; i++) {
      const vi = beta * v[i] + c * g[i];
      v[i] = vi;
      const wi = w[i];
      const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
      w[i] = wi - d - lr * vi;
    }
  },
});
