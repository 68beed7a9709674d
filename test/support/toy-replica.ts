/**
 * A replica module (src/fleet/worker/replica.ts) that builds the pure-JS toy model instead of the
 * real one: the fast stand-in for tests of the distribution machinery. Pass `TOY_REPLICA` as
 * `replicaModule` to the coordinator, the training loop or a remote worker.
 */
import type { ReplicaSpec } from '../../src/fleet/contract.ts';
import type { LanguageModel } from '../../src/model/api.ts';
import { createToyModel } from './toy-model.ts';

export const TOY_REPLICA = import.meta.url;

export async function createReplica(spec: ReplicaSpec): Promise<LanguageModel> {
  return createToyModel(spec.model);
}

export async function initReplicaBackend(): Promise<string> {
  return 'toy';
}
