import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Job } from 'kubernetes-models/batch/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import type { IContainer, IPodSpec, IVolume } from 'kubernetes-models/v1';
import { validateConfig } from '../src/config/index.ts';

/**
 * Offline validation of cluster/k8s: every manifest against the Kubernetes schemas
 * (kubernetes-models), and the references between them (names, ports, mounts, flags).
 */
const DIR = 'cluster/k8s';

interface Manifest { file: string; kind: string; name: string; obj: Record<string, unknown> }

function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')) {
    for (const doc of parseAllDocuments(readFileSync(path.join(DIR, file), 'utf8'))) {
      assert.equal(doc.errors.length, 0, `${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const obj = doc.toJS() as Record<string, unknown> | null;
      if (!obj) continue;
      const meta = obj.metadata as { name?: string } | undefined;
      out.push({ file, kind: String(obj.kind), name: String(meta?.name), obj });
    }
  }
  return out;
}

const manifests = loadManifests();
function one(kind: string, name?: string): Manifest {
  const hits = manifests.filter((m) => m.kind === kind && (name === undefined || m.name === name));
  assert.equal(hits.length, 1, `expected one ${kind}${name ? ` named ${name}` : ''}, found ${hits.length}`);
  return hits[0];
}

test('every manifest is valid against the Kubernetes schema (kubernetes-models)', () => {
  // kind → model class; constructing + validate() checks types, required fields and enums
  const models: Record<string, new (o: never) => { validate(): void }> = {
    Job, Deployment, Service, Secret, ConfigMap, PersistentVolumeClaim,
  };
  assert.ok(manifests.length >= 6);
  for (const m of manifests) {
    const Model = models[m.kind];
    assert.ok(Model, `${m.file}: unexpected kind ${m.kind}`);
    assert.doesNotThrow(() => new Model(m.obj as never).validate(), `${m.file} (${m.kind} ${m.name})`);
  }
  // the check is real: a wrong type is rejected
  const broken = structuredClone(one('Job').obj) as { spec: { backoffLimit: unknown } };
  broken.spec.backoffLimit = 'none';
  assert.throws(() => new Job(broken as never).validate(), /backoffLimit/);
});

test('kustomization lists exactly the manifest files', () => {
  const k = parseYaml(readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8')) as { kind: string; resources: string[]; images?: { name: string }[] };
  assert.equal(k.kind, 'Kustomization');
  const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...k.resources].sort(), files);
  // the image name the kustomization rewrites is the one the containers use
  const images = new Set(manifests.flatMap((m) => containers(m).map((c) => c.image)));
  assert.deepEqual([...images], k.images?.map((i) => i.name));
});

function podSpec(m: Manifest): IPodSpec {
  return ((m.obj.spec as { template?: { spec?: IPodSpec } })?.template?.spec) ?? ({ containers: [] } as IPodSpec);
}
function podLabels(m: Manifest): Record<string, string> {
  return (m.obj.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
}
function containers(m: Manifest): IContainer[] {
  return m.kind === 'Job' || m.kind === 'Deployment' ? podSpec(m).containers : [];
}
function flag(args: string[], name: string): string {
  const i = args.indexOf(name);
  assert.ok(i >= 0 && i + 1 < args.length, `missing ${name} in ${args.join(' ')}`);
  return args[i + 1];
}
/** The volume a file path is mounted from, and the file name inside that volume. */
function volumeFor(m: Manifest, c: IContainer, file: string): { volume: IVolume; key: string } {
  const mount = (c.volumeMounts ?? []).find((vm) => file.startsWith(vm.mountPath.replace(/\/?$/, '/')));
  assert.ok(mount, `${m.file}: ${file} is not under any volumeMount`);
  const volume = (podSpec(m).volumes ?? []).find((v) => v.name === mount.name);
  assert.ok(volume, `${m.file}: volumeMount ${mount.name} has no volume`);
  return { volume, key: file.slice(mount.mountPath.replace(/\/?$/, '/').length) };
}
/** Keys of a Secret: kustomization.yaml generates it (secretGenerator, from files that stay out of git). */
function secretKeys(name: string): string[] {
  const k = parseYaml(readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8')) as {
    secretGenerator?: { name: string; files?: string[]; literals?: string[] }[]; generatorOptions?: { disableNameSuffixHash?: boolean };
  };
  const g = (k.secretGenerator ?? []).filter((x) => x.name === name);
  assert.equal(g.length, 1, `kustomization.yaml generates no Secret ${name}`);
  // without this the generated name gets a hash suffix (kustomize rewrites references; keep it plain and predictable)
  assert.equal(k.generatorOptions?.disableNameSuffixHash, true);
  const files = (g[0].files ?? []).map((f) => f.split('=')[0]);
  // the token file must never be committed
  for (const f of g[0].files ?? []) {
    const file = path.join(DIR, f.includes('=') ? f.split('=')[1] : f);
    const r = spawnSync('git', ['check-ignore', '-q', file]);
    assert.equal(r.status, 0, `${file} is not git-ignored`);
  }
  return [...files, ...(g[0].literals ?? []).map((l) => l.split('=')[0])];
}

test('workers connect to the port and name the coordinator Service exposes; the Service selects the coordinator pod', () => {
  const job = one('Job', 'vilm-coordinator');
  const svc = one('Service', 'vilm-coordinator');
  const dep = one('Deployment', 'vilm-worker');
  const spec = svc.obj.spec as { clusterIP: string; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
  assert.equal(spec.clusterIP, 'None', 'headless Service');
  // the DNS name must resolve before the coordinator is ready, or --min-workers would wait forever
  assert.equal((svc.obj.spec as { publishNotReadyAddresses?: boolean }).publishNotReadyAddresses, true);
  const labels = podLabels(job);
  for (const [k, v] of Object.entries(spec.selector)) assert.equal(labels[k], v, `Service selector ${k}`);
  const depSpec = dep.obj.spec as { selector: { matchLabels: Record<string, string> }; replicas: number };
  for (const [k, v] of Object.entries(depSpec.selector.matchLabels)) assert.equal(podLabels(dep)[k], v, `Deployment selector ${k}`);
  // the coordinator Service must not select worker pods
  assert.ok(Object.entries(spec.selector).some(([k, v]) => podLabels(dep)[k] !== v));
  assert.ok(depSpec.replicas >= 1);

  const coord = containers(job)[0];
  const cports = new Map((coord.ports ?? []).map((p) => [p.name, p.containerPort]));
  // each Service port reaches a named container port with the same number
  for (const p of spec.ports) {
    const target = typeof p.targetPort === 'string' ? cports.get(p.targetPort) : p.targetPort;
    assert.equal(target, p.port, `Service port ${p.name}`);
  }
  assert.equal(cports.get('ws'), 7070);
  assert.equal(cports.get('metrics'), 9464);
  const cargs = coord.args ?? [];
  assert.equal(cargs[0], 'coordinator');
  assert.equal(Number(flag(cargs, '--port')), cports.get('ws'));
  assert.equal(flag(cargs, '--host'), '0.0.0.0', 'remote workers connect from other pods');
  // it waits for as many workers as the Deployment starts, or it would never begin
  assert.ok(Number(flag(cargs, '--min-workers')) <= (dep.obj.spec as { replicas: number }).replicas);
  assert.equal(Number(flag(cargs, '--metrics-port')), cports.get('metrics'));

  const worker = containers(dep)[0];
  const wargs = worker.args ?? [];
  assert.equal(wargs[0], 'worker');
  const url = new URL(flag(wargs, '--connect'));
  assert.equal(url.protocol, 'ws:');
  assert.equal(url.hostname, svc.name);
  assert.equal(Number(url.port), spec.ports.find((p) => p.name === 'ws')?.port);
});

test('token, config and data volumes resolve to a Secret, ConfigMap and PVC that exist', () => {
  const job = one('Job', 'vilm-coordinator');
  const dep = one('Deployment', 'vilm-worker');
  for (const m of [job, dep]) {
    const c = containers(m)[0];
    const { volume, key } = volumeFor(m, c, flag(c.args ?? [], '--token-file'));
    assert.ok(volume.secret?.secretName, `${m.file}: token must come from a Secret`);
    assert.ok(secretKeys(volume.secret.secretName).includes(key), `${m.file}: Secret ${volume.secret.secretName} has no key ${key}`);
  }
  const c = containers(job)[0];
  const cfg = volumeFor(job, c, flag(c.args ?? [], '--config'));
  assert.ok(cfg.volume.configMap?.name);
  const cm = one('ConfigMap', cfg.volume.configMap.name).obj as { data: Record<string, string> };
  assert.ok(cm.data[cfg.key], `ConfigMap has no key ${cfg.key}`);
  // the config inside is a valid vilm run config
  const run = validateConfig(parseYaml(cm.data[cfg.key]), `${DIR}/configmap.yaml`);
  assert.equal(run.model.d_model, 64);

  for (const f of ['--data', '--out']) {
    const { volume } = volumeFor(job, c, flag(c.args ?? [], f));
    assert.ok(volume.persistentVolumeClaim, `${f} must live on the PVC`);
    one('PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
  }
});

test('Prometheus annotations and probes point at the metrics port', () => {
  const job = one('Job', 'vilm-coordinator');
  const ann = (job.obj.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations;
  assert.equal(ann['prometheus.io/scrape'], 'true');
  assert.equal(ann['prometheus.io/path'], '/metrics');
  const c = containers(job)[0];
  assert.equal(Number(ann['prometheus.io/port']), c.ports?.find((p) => p.name === 'metrics')?.containerPort);
  assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(c.readinessProbe?.httpGet?.port, 'metrics');
  // the in-cluster Prometheus config finds the coordinator through the headless Service
  const prom = parseYaml(readFileSync('cluster/prometheus/prometheus-k8s.yml', 'utf8')) as { scrape_configs: { job_name: string; dns_sd_configs: { names: string[]; port: number }[] }[] };
  const sd = prom.scrape_configs.find((s) => s.job_name === 'vilm-coordinator')!.dns_sd_configs[0];
  assert.deepEqual(sd.names, ['vilm-coordinator']);
  assert.equal(sd.port, 9464);
});

test('Dockerfile: node:20-slim, production install, entrypoint bin/vilm.js, copied paths exist', () => {
  const df = readFileSync('Dockerfile', 'utf8');
  assert.match(df, /^FROM node:20-slim$/m);
  assert.match(df, /^RUN npm ci --omit=dev\b/m);
  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(df);
  assert.ok(entry);
  assert.deepEqual(JSON.parse(entry[1]), ['node', 'bin/vilm.js']);
  for (const m of df.matchAll(/^COPY (.+) (\S+)$/gm)) {
    for (const src of m[1].split(/\s+/)) assert.ok(existsSync(src), `COPY source ${src} missing`);
  }
  // tsx runs the sources in the image, so it must be a production dependency
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
  assert.ok(pkg.dependencies.tsx);
  const ignore = readFileSync('.dockerignore', 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['node_modules', '.git', 'runs']) assert.ok(ignore.includes(p), `.dockerignore: ${p}`);
});

/** Flags of a vilm subcommand, read from its --help; null when the command does not exist yet. */
function knownFlags(command: string): Set<string> | null {
  const r = spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', command, '--help'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 || !r.stdout.includes(`vilm ${command}`)) return null;
  return new Set([...r.stdout.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]));
}

test('container args only use flags the vilm CLI knows', async () => {
  for (const m of [one('Job', 'vilm-coordinator'), one('Deployment', 'vilm-worker')]) {
    const args = containers(m)[0].args ?? [];
    const flags = knownFlags(args[0]);
    assert.ok(flags, `vilm ${args[0]} --help failed`);
    for (const a of args.filter((x) => x.startsWith('--'))) {
      assert.ok(flags.has(a), `${m.file}: vilm ${args[0]} has no flag ${a}`);
    }
  }
});

test('every pod passes the "restricted" Pod Security profile', () => {
  for (const m of [one('Job', 'vilm-coordinator'), one('Deployment', 'vilm-worker')]) {
    const spec = podSpec(m);
    const psc = spec.securityContext ?? {};
    assert.equal(psc.runAsNonRoot, true, `${m.file}: runAsNonRoot`);
    assert.ok(Number.isInteger(psc.runAsUser) && psc.runAsUser! > 0, `${m.file}: a numeric non-root runAsUser`);
    assert.equal(psc.seccompProfile?.type, 'RuntimeDefault', `${m.file}: seccompProfile`);
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const sc = c.securityContext ?? {};
      assert.equal(sc.allowPrivilegeEscalation, false, `${m.file} ${c.name}: allowPrivilegeEscalation`);
      assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${m.file} ${c.name}: capabilities.drop`);
      assert.ok(!sc.capabilities?.add?.length && sc.privileged !== true && sc.runAsUser !== 0, `${m.file} ${c.name}: no privileges`);
    }
    assert.ok(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, `${m.file}: host namespaces`);
    assert.ok(!(spec.volumes ?? []).some((v) => v.hostPath), `${m.file}: hostPath volume`);
  }
});

test("the workers' metrics: a headless Service the in-cluster Prometheus resolves, on the port the workers serve", () => {
  const dep = one('Deployment', 'vilm-worker');
  const svc = one('Service', 'vilm-workers');
  const spec = svc.obj.spec as { clusterIP: string; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
  assert.equal(spec.clusterIP, 'None');
  for (const [k, v] of Object.entries(spec.selector)) assert.equal(podLabels(dep)[k], v, `Service selector ${k}`);
  const c = containers(dep)[0];
  const port = c.ports?.find((p) => p.name === 'metrics')?.containerPort;
  assert.equal(Number(flag(c.args ?? [], '--metrics-port')), port);
  assert.equal(flag(c.args ?? [], '--metrics-host'), '0.0.0.0');
  assert.equal(spec.ports.find((p) => p.name === 'metrics')?.port, port);
  const ann = (dep.obj.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations;
  assert.equal(Number(ann['prometheus.io/port']), port);
  const prom = parseYaml(readFileSync('cluster/prometheus/prometheus-k8s.yml', 'utf8')) as { scrape_configs: { job_name: string; dns_sd_configs: { names: string[]; port: number }[] }[] };
  const sd = prom.scrape_configs.find((x) => x.job_name === 'vilm-worker')!.dns_sd_configs[0];
  assert.deepEqual(sd.names, [svc.name]);
  assert.equal(sd.port, port);
});
