import { defineRule } from '../rule.js';

/** sgd: w −= lr·g */
export const sgd = defineRule({
  name: 'sgd',
  buffers: [],
  step({ w, g, lr, decay, mask }) {
    const n = w.length; // the loop bound from the array itself (see RuleStep.w)
    for (let i = 0; i < n; i++) {
      const wi = w[i];
      const d = decay !== 0 && (!mask || mask[i] === 1) ? decay * wi : 0;
      w[i] = wi - d - lr * g[i];
    }
  },
});
