/**
 * A worker's model replica. Production workers build the real model on the spec's backend; a
 * program embedding the fleet (the tests' pure-JS toy model) can name another module with the
 * same exports through `replicaModule` — a LOCAL option of the coordinator or worker process, never
 * something a peer can send.
 */
import type { LanguageModel } from '../../model/api.js';
import type { ReplicaSpec } from '../contract.js';

/** What a replica module exports. */
export interface ReplicaModule {
  /** Build one replica (called once per thread / process). */
  createReplica(spec: ReplicaSpec): Promise<LanguageModel>;
  /** Prepare this thread to run replicas and name the backend in use (logs, metrics, checkpoints). */
  initReplicaBackend(spec: ReplicaSpec): Promise<string>;
}

export async function createReplica(spec: ReplicaSpec): Promise<LanguageModel> {
  await initReplicaBackend(spec);
  const { createModel } = await import('../../model/model.js');
  return createModel(spec.model);
}

export async function initReplicaBackend(spec: ReplicaSpec): Promise<string> {
  const { initBackend } = await import('../../backend/index.js');
  return initBackend(spec.backend);
}

/** The replica module: the real model, or the module at `url` (a file URL) when given. */
export async function loadReplicaModule(url?: string): Promise<ReplicaModule> {
  if (url === undefined) return { createReplica, initReplicaBackend };
  return await import(url) as ReplicaModule;
}
