/**
 * Global-norm gradient clipping on the flat gradient.
 *
 * The norm is accumulated in float64 in index order (one fixed summation order, so the same
 * gradient always gives the same norm, on every machine and every transport).
 */

/** ‖grad‖₂ in float64, summed in index order. */
export function globalNorm(grad: Float32Array): number {
  let s = 0;
  for (let i = 0; i < grad.length; i++) { const g = grad[i]; s += g * g; }
  return Math.sqrt(s);
}

/**
 * If ‖grad‖ > maxNorm, scale `grad` in place by maxNorm/‖grad‖. Returns the norm BEFORE clipping.
 * `maxNorm ≤ 0` (or not finite) disables clipping. A non-finite norm is returned as is and the
 * gradient is left untouched (the caller decides to skip the step).
 */
export function clipGlobalNorm(grad: Float32Array, maxNorm: number): number {
  const norm = globalNorm(grad);
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm) || !Number.isFinite(norm)) return norm;
  if (norm > maxNorm) {
    const scale = maxNorm / norm;
    for (let i = 0; i < grad.length; i++) grad[i] *= scale;
  }
  return norm;
}
