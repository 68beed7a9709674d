import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Job } from 'kubernetes-models/batch/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import type { IContainer, IPodSpec, IVolume } from 'kubernetes-models/v1';
import { validateConfig } from '../src/config/index.ts';
import { parseDockerfile } from '../scripts/check-image-layout.ts';

/**
 * Offline validation of cluster/k8s: every manifest against the Kubernetes schemas
 * (kubernetes-models) — types, enums, required fields AND no field the schema does not know —, the
 * "restricted" Pod Security profile, the workers' lifetime, and the references between the
 * manifests (names, ports, mounts, flags, the image's user).
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

/** kind → model class (its prototype.validate runs the generated JSON-schema validator). */
const MODELS: Record<string, { apiVersion: string; prototype: { validate(): void } }> = {
  Job, Deployment, Service, Secret, ConfigMap, PersistentVolumeClaim,
};

/**
 * Validate like kubernetes-models' validate() (types, enums, required fields), and also reject
 * every field the schema does not know, which validate() lets through (its schemas allow
 * additional properties, so `replicaz` or `imagePullPolicyy` pass it; the API server would drop
 * them with a warning, or refuse them under kubectl's strict field validation).
 *
 * How: the generated validator reads, for every object it checks, each property its schema
 * declares — through $ref into nested definitions, into every array item, and every key of a map
 * (labels, annotations, resource limits: `additionalProperties` with a value schema). It is run on
 * a Proxy of the manifest that records which keys were read; an own key never read is unknown to
 * the schema. Returns problems as `<path>: <what>`, e.g. `spec.template.spec.containers[0].imagePullPolicyy: unknown field`.
 */
function strictProblems(obj: Record<string, unknown>): string[] {
  const Model = MODELS[String(obj.kind)];
  if (!Model) return [`kind ${String(obj.kind)}: no schema here`];
  const out: string[] = [];
  if (obj.apiVersion !== Model.apiVersion) out.push(`apiVersion: ${String(obj.apiVersion)} (expected ${Model.apiVersion})`);
  const read = new Map<object, { path: string; keys: Set<string> }>();
  const proxies = new WeakMap<object, object>();
  const wrap = (v: unknown, p: string): unknown => {
    if (v === null || typeof v !== 'object') return v;
    let px = proxies.get(v);
    if (!px) {
      const seen = { path: p, keys: new Set<string>() };
      read.set(v, seen);
      px = new Proxy(v, {
        get(t, k, r) {
          const x: unknown = Reflect.get(t, k, r);
          if (typeof k !== 'string' || !Object.hasOwn(t, k)) return x;
          seen.keys.add(k);
          return wrap(x, Array.isArray(t) ? `${p}[${k}]` : p ? `${p}.${k}` : k);
        },
        has(t, k) {
          if (typeof k === 'string') seen.keys.add(k);
          return Reflect.has(t, k);
        },
      });
      proxies.set(v, px);
    }
    return px;
  };
  try {
    Model.prototype.validate.call(wrap(obj, ''));
  } catch (e) {
    out.push(`schema: ${(e as Error).message}`);
  }
  for (const [target, { path: p, keys }] of read) {
    for (const k of Object.keys(target)) {
      if (!keys.has(k)) out.push(`${Array.isArray(target) ? `${p}[${k}]` : p ? `${p}.${k}` : k}: unknown field`);
    }
  }
  return out;
}

test('every manifest is valid against the Kubernetes schema, strictly: no field the schema does not know', () => {
  assert.ok(manifests.length >= 6);
  for (const m of manifests) assert.deepEqual(strictProblems(m.obj), [], `${m.file} (${m.kind} ${m.name})`);
});

test('the strict check rejects misspelled and unknown fields, naming their path; maps take any key', () => {
  const mutate = (m: Manifest, f: (o: any) => void) => { const o = structuredClone(m.obj); f(o); return strictProblems(o); };
  const workers = one('Job', 'vilm-worker');
  const coord = one('Job', 'vilm-coordinator');
  assert.deepEqual(mutate(workers, (o) => { o.spec.replicaz = 3; }), ['spec.replicaz: unknown field']);
  assert.deepEqual(mutate(workers, (o) => { o.spec.template.spec.containers[0].imagePullPolicyy = 'Always'; }),
    ['spec.template.spec.containers[0].imagePullPolicyy: unknown field']);
  assert.deepEqual(mutate(coord, (o) => { o.spec.template.spec.volumes[2].persistentVolumeClaim.claimNam = 'x'; }),
    ['spec.template.spec.volumes[2].persistentVolumeClaim.claimNam: unknown field']);
  assert.deepEqual(mutate(coord, (o) => { o.spec.template.spec.initContainers[0].securityContext.capabilities.dorp = ['ALL']; }),
    ['spec.template.spec.initContainers[0].securityContext.capabilities.dorp: unknown field']);
  assert.deepEqual(mutate(one('Service', 'vilm-coordinator'), (o) => { o.metadataa = {}; }), ['metadataa: unknown field']);
  // maps: labels, annotations and resource limits take any key; the ConfigMap's data any file name
  assert.deepEqual(mutate(coord, (o) => {
    o.metadata.labels['example.org/any-thing'] = 'x';
    o.spec.template.metadata.annotations['example.org/note'] = 'y';
    o.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'] = '1';
  }), []);
  assert.deepEqual(mutate(one('ConfigMap'), (o) => { o.data['other.yaml'] = 'a: 1'; }), []);
  // and the type checks of validate() still apply
  assert.match(mutate(coord, (o) => { o.spec.backoffLimit = 'none'; }).join('\n'), /schema: .*backoffLimit/);
  assert.match(mutate(coord, (o) => { o.apiVersion = 'batch/v2'; }).join('\n'), /apiVersion: batch\/v2/);
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
/** The worker's wrapper: `command: [/usr/bin/tini, --, sh, -c]`, args: [script, $0, ...vilm's arguments]. */
const WRAPPED = ['/usr/bin/tini', '--', 'sh', '-c'];
/** The arguments vilm gets: the container's args (the image's ENTRYPOINT runs vilm), or those after the wrapper's script and $0. */
function vilmArgs(c: IContainer): string[] {
  if (c.command === undefined) return c.args ?? [];
  assert.deepEqual(c.command, WRAPPED, `${c.name}: an unexpected command`);
  assert.match(c.args?.[0] ?? '', /node bin\/vilm\.js "\$@"/, `${c.name}: the wrapper script must run vilm with its arguments`);
  return (c.args ?? []).slice(2);
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
  const dep = one('Job', 'vilm-worker');
  const spec = svc.obj.spec as { clusterIP: string; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
  assert.equal(spec.clusterIP, 'None', 'headless Service');
  // the DNS name must resolve before the coordinator is ready, or --min-workers would wait forever
  assert.equal((svc.obj.spec as { publishNotReadyAddresses?: boolean }).publishNotReadyAddresses, true);
  const labels = podLabels(job);
  for (const [k, v] of Object.entries(spec.selector)) assert.equal(labels[k], v, `Service selector ${k}`);
  const depSpec = dep.obj.spec as { parallelism: number };
  // the coordinator Service must not select worker pods
  assert.ok(Object.entries(spec.selector).some(([k, v]) => podLabels(dep)[k] !== v));
  assert.ok(depSpec.parallelism >= 1);

  const coord = containers(job)[0];
  const cports = new Map((coord.ports ?? []).map((p) => [p.name, p.containerPort]));
  // each Service port reaches a named container port with the same number
  for (const p of spec.ports) {
    const target = typeof p.targetPort === 'string' ? cports.get(p.targetPort) : p.targetPort;
    assert.equal(target, p.port, `Service port ${p.name}`);
  }
  assert.equal(cports.get('ws'), 7070);
  assert.equal(cports.get('metrics'), 9464);
  const cargs = vilmArgs(coord);
  assert.equal(cargs[0], 'coordinator');
  assert.equal(Number(flag(cargs, '--port')), cports.get('ws'));
  assert.equal(flag(cargs, '--host'), '0.0.0.0', 'remote workers connect from other pods');
  // it waits for at most as many workers as the worker Job runs, or it would never begin
  assert.ok(Number(flag(cargs, '--min-workers')) <= depSpec.parallelism);
  assert.equal(Number(flag(cargs, '--metrics-port')), cports.get('metrics'));

  const worker = containers(dep)[0];
  const wargs = vilmArgs(worker);
  assert.equal(wargs[0], 'worker');
  const url = new URL(flag(wargs, '--connect'));
  assert.equal(url.protocol, 'ws:');
  assert.equal(url.hostname, svc.name);
  assert.equal(Number(url.port), spec.ports.find((p) => p.name === 'ws')?.port);
});

test('token, config and data volumes resolve to a Secret, ConfigMap and PVC that exist', () => {
  const job = one('Job', 'vilm-coordinator');
  const dep = one('Job', 'vilm-worker');
  for (const m of [job, dep]) {
    const c = containers(m)[0];
    const { volume, key } = volumeFor(m, c, flag(vilmArgs(c), '--token-file'));
    assert.ok(volume.secret?.secretName, `${m.file}: token must come from a Secret`);
    assert.ok(secretKeys(volume.secret.secretName).includes(key), `${m.file}: Secret ${volume.secret.secretName} has no key ${key}`);
  }
  const c = containers(job)[0];
  const cfg = volumeFor(job, c, flag(vilmArgs(c), '--config'));
  assert.ok(cfg.volume.configMap?.name);
  const cm = one('ConfigMap', cfg.volume.configMap.name).obj as { data: Record<string, string> };
  assert.ok(cm.data[cfg.key], `ConfigMap has no key ${cfg.key}`);
  // the config inside is a valid vilm run config
  const run = validateConfig(parseYaml(cm.data[cfg.key]), `${DIR}/configmap.yaml`);
  assert.equal(run.model.d_model, 64);

  for (const f of ['--data', '--out']) {
    const { volume } = volumeFor(job, c, flag(vilmArgs(c), f));
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

/** Flags of a vilm subcommand, read from its --help; null when the command does not exist yet. */
function knownFlags(command: string): Set<string> | null {
  const r = spawnSync('node', ['--import', 'tsx', 'src/cli/main.ts', command, '--help'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 || !r.stdout.includes(`vilm ${command}`)) return null;
  return new Set([...r.stdout.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]));
}

test('container args only use flags the vilm CLI knows', async () => {
  for (const m of [one('Job', 'vilm-coordinator'), one('Job', 'vilm-worker')]) {
    const args = vilmArgs(containers(m)[0]);
    const flags = knownFlags(args[0]);
    assert.ok(flags, `vilm ${args[0]} --help failed`);
    for (const a of args.filter((x) => x.startsWith('--'))) {
      assert.ok(flags.has(a), `${m.file}: vilm ${args[0]} has no flag ${a}`);
    }
  }
});

/**
 * Violations of the Pod Security Standards' "restricted" profile (which includes "baseline"), as
 * the admission controller checks them (kubernetes.io/docs/concepts/security/pod-security-standards).
 */
function restrictedViolations(spec: IPodSpec): string[] {
  const out: string[] = [];
  const psc = spec.securityContext ?? {};
  const all = [...(spec.initContainers ?? []), ...spec.containers];
  // baseline
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push('host namespaces');
  if (spec.hostUsers === false) { /* user namespaces: allowed */ }
  const sysctlsOk = new Set(['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes']);
  for (const s of psc.sysctls ?? []) if (!sysctlsOk.has(s.name)) out.push(`sysctl ${s.name}`);
  const seLinuxOk = (o?: { type?: string; user?: string; role?: string }) => !o || ((!o.type || ['container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'].includes(o.type)) && !o.user && !o.role);
  if (!seLinuxOk(psc.seLinuxOptions)) out.push('pod seLinuxOptions');
  if (psc.appArmorProfile && !['RuntimeDefault', 'Localhost'].includes(psc.appArmorProfile.type)) out.push('pod appArmorProfile');
  if (psc.windowsOptions?.hostProcess) out.push('hostProcess');
  // restricted: volume types
  const volumeOk = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  for (const v of spec.volumes ?? []) {
    const types = Object.keys(v).filter((k) => k !== 'name');
    if (!types.every((t) => volumeOk.includes(t))) out.push(`volume ${v.name}: ${types.join(', ')}`);
  }
  // restricted: pod-level settings every container inherits unless it sets its own
  const podNonRoot = psc.runAsNonRoot === true;
  const seccompOk = (t?: string) => t === 'RuntimeDefault' || t === 'Localhost';
  if (psc.runAsUser === 0) out.push('pod runAsUser 0');
  if (psc.seccompProfile && !seccompOk(psc.seccompProfile.type)) out.push(`pod seccompProfile ${psc.seccompProfile.type}`);
  for (const c of all) {
    const sc = c.securityContext ?? {};
    const n = c.name;
    if (sc.privileged) out.push(`${n}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${n}: allowPrivilegeEscalation must be false`);
    if (!(sc.runAsNonRoot === true || (podNonRoot && sc.runAsNonRoot === undefined))) out.push(`${n}: runAsNonRoot`);
    if (sc.runAsUser === 0) out.push(`${n}: runAsUser 0`);
    const sp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (!seccompOk(sp)) out.push(`${n}: seccompProfile ${sp ?? '(unset)'}`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${n}: capabilities.drop must include ALL`);
    for (const a of sc.capabilities?.add ?? []) if (a !== 'NET_BIND_SERVICE') out.push(`${n}: capability ${a}`);
    if (sc.procMount && sc.procMount !== 'Default') out.push(`${n}: procMount`);
    if (!seLinuxOk(sc.seLinuxOptions)) out.push(`${n}: seLinuxOptions`);
    if (sc.appArmorProfile && !['RuntimeDefault', 'Localhost'].includes(sc.appArmorProfile.type)) out.push(`${n}: appArmorProfile`);
    if (sc.windowsOptions?.hostProcess) out.push(`${n}: hostProcess`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${n}: hostPort ${p.hostPort}`);
  }
  return out;
}

test('every pod passes the "restricted" Pod Security profile', () => {
  const pods = manifests.filter((m) => m.kind === 'Job' || m.kind === 'Deployment');
  assert.equal(pods.length, 2);
  for (const m of pods) assert.deepEqual(restrictedViolations(podSpec(m)), [], m.file);
  // the check is real: each of these breaks the profile
  const base = podSpec(one('Job', 'vilm-coordinator'));
  const breaks: [string, (s: any) => void, RegExp][] = [
    ['no runAsNonRoot', (s) => { delete s.securityContext.runAsNonRoot; }, /runAsNonRoot/],
    ['root', (s) => { s.securityContext.runAsUser = 0; }, /runAsUser 0/],
    ['no seccomp', (s) => { delete s.securityContext.seccompProfile; }, /seccompProfile \(unset\)/],
    ['Unconfined', (s) => { s.securityContext.seccompProfile.type = 'Unconfined'; }, /seccompProfile Unconfined/],
    ['escalation', (s) => { delete s.initContainers[0].securityContext.allowPrivilegeEscalation; }, /wait-for-data: allowPrivilegeEscalation/],
    ['capabilities', (s) => { s.containers[0].securityContext.capabilities = { drop: ['ALL'], add: ['SYS_ADMIN'] }; }, /capability SYS_ADMIN/],
    ['hostPath', (s) => { s.volumes.push({ name: 'h', hostPath: { path: '/' } }); }, /volume h: hostPath/],
    ['hostNetwork', (s) => { s.hostNetwork = true; }, /host namespaces/],
    ['hostPort', (s) => { s.containers[0].ports[0].hostPort = 7070; }, /hostPort 7070/],
    ['privileged', (s) => { s.containers[0].securityContext.privileged = true; }, /privileged/],
  ];
  for (const [what, f, why] of breaks) {
    const s = structuredClone(base);
    f(s);
    assert.match(restrictedViolations(s).join('\n'), why, what);
  }
});

test("the pods run as the image's numeric user, which owns the image's writable folders", () => {
  const stages = parseDockerfile(readFileSync('Dockerfile', 'utf8'));
  const user = stages.at(-1)!.instructions.filter((i) => i.keyword === 'USER').at(-1)!.raw;
  const [uid, gid] = user.split(':').map(Number);
  assert.ok(uid > 0 && Number.isInteger(gid), `Dockerfile USER ${user}`);
  for (const m of [one('Job', 'vilm-coordinator'), one('Job', 'vilm-worker')]) {
    const psc = podSpec(m).securityContext ?? {};
    assert.equal(psc.runAsUser, uid, `${m.file}: runAsUser`);
    assert.equal(psc.runAsGroup, gid, `${m.file}: runAsGroup`);
  }
  // the coordinator writes its volume: fsGroup makes it group-writable for that gid
  assert.equal(podSpec(one('Job', 'vilm-coordinator')).securityContext?.fsGroup, gid);
});

test("the workers' lifetime is the run's: a work-queue Job whose pods end when the coordinator says bye", () => {
  const w = one('Job', 'vilm-worker');
  const spec = w.obj.spec as { parallelism?: number; completions?: number; completionMode?: string; backoffLimit?: number;
    podFailurePolicy?: { rules: { action: string; onPodConditions?: { type: string }[] }[] } };
  assert.ok(manifests.every((m) => m.kind !== 'Deployment'), 'a Deployment restarts finished workers forever');
  // work queue: no completions. After the first worker exits 0 (bye) no new pod is started and the
  // Job completes once every pod has ended; with completions=N, a worker that missed the bye would be replaced
  assert.equal(spec.completions, undefined);
  assert.ok((spec.parallelism ?? 0) >= 1);
  assert.notEqual(spec.completionMode, 'Indexed');
  assert.ok((spec.backoffLimit ?? 6) >= 1, 'a crashed worker is replaced');
  assert.equal(podSpec(w).restartPolicy, 'Never', 'podFailurePolicy needs restartPolicy Never');
  // a stop by Kubernetes (drain, eviction, preemption) neither counts as a failure …
  assert.ok(spec.podFailurePolicy?.rules.some((r) => r.action === 'Ignore' && r.onPodConditions?.some((c) => c.type === 'DisruptionTarget')));
  // … nor as success: the wrapper (tested below) turns it into exit 143
  assert.deepEqual(containers(w)[0].command, WRAPPED);
  // the coordinator Job never restarts in place either (a rerun continues the run from --out)
  assert.equal(podSpec(one('Job', 'vilm-coordinator')).restartPolicy, 'Never');
});

/** Run the worker's wrapper script the way its container does (`sh -c SCRIPT vilm ARGS…`) in `cwd`. */
function runWrapper(cwd: string, args: string[]) {
  const c = containers(one('Job', 'vilm-worker'))[0];
  return spawn('sh', ['-c', c.args![0], 'vilm', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}
function ended(p: ReturnType<typeof spawn>, ms: number): Promise<{ code: number | null; signal: string | null; out: string }> {
  let out = '';
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  p.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`did not end within ${ms} ms: ${out.slice(-2000)}`)); }, ms);
    p.on('close', (code, signal) => { clearTimeout(t); resolve({ code, signal, out }); });
  });
}

test("the worker's wrapper: vilm's exit code when vilm ends (0 after bye), 143 when Kubernetes stops the pod", async () => {
  // a stand-in for vilm that exits with the code it is given, as vilm does after bye (0) or an error
  const dir = mkdtempSync(path.join(tmpdir(), 'vilm-wrapper-'));
  try {
    mkdirSync(path.join(dir, 'bin'));
    writeFileSync(path.join(dir, 'bin', 'vilm.js'), 'process.exit(Number(process.argv[2]));\n');
    for (const code of [0, 3, 69]) assert.equal((await ended(runWrapper(dir, [String(code)]), 30_000)).code, code);
  } finally { rmSync(dir, { recursive: true, force: true }); }

  // the real worker exits 0 on SIGTERM (to Kubernetes, "finished") …
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const closedPort = `ws://127.0.0.1:${(srv.address() as AddressInfo).port}`; // closed below: the worker keeps retrying
  srv.close();
  await once(srv, 'close');
  const direct = spawn(process.execPath, ['bin/vilm.js', 'worker', '--connect', closedPort, '--retry', '120'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const d = ended(direct, 120_000);
  await waitFor(direct, /retrying/, 90_000);
  direct.kill('SIGTERM');
  assert.equal((await d).code, 0);
  // … and through the wrapper the same stop ends the container with 143
  const wrapped = runWrapper(process.cwd(), ['worker', '--connect', closedPort, '--retry', '120']);
  const r = ended(wrapped, 120_000);
  await waitFor(wrapped, /retrying/, 90_000);
  wrapped.kill('SIGTERM');
  const res = await r;
  assert.equal(res.code, 143, res.out.slice(-2000));
  assert.match(res.out, /SIGTERM: leaving the coordinator/, 'vilm itself got the SIGTERM and left');
});

/** Resolve when the process has printed a line matching `re` (stdout or stderr); reject at the deadline. */
function waitFor(p: ReturnType<typeof spawn>, re: RegExp, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const t = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms: ${seen.slice(-2000)}`)), ms);
    const on = (d: Buffer) => { seen += d.toString(); if (re.test(seen)) { clearTimeout(t); resolve(); } };
    p.stdout!.on('data', on);
    p.stderr!.on('data', on);
  });
}

test("the workers' metrics: a headless Service the in-cluster Prometheus resolves, on the port the workers serve", () => {
  const dep = one('Job', 'vilm-worker');
  const svc = one('Service', 'vilm-workers');
  const spec = svc.obj.spec as { clusterIP: string; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
  assert.equal(spec.clusterIP, 'None');
  for (const [k, v] of Object.entries(spec.selector)) assert.equal(podLabels(dep)[k], v, `Service selector ${k}`);
  const c = containers(dep)[0];
  const port = c.ports?.find((p) => p.name === 'metrics')?.containerPort;
  assert.equal(Number(flag(vilmArgs(c), '--metrics-port')), port);
  assert.equal(flag(vilmArgs(c), '--metrics-host'), '0.0.0.0');
  assert.equal(spec.ports.find((p) => p.name === 'metrics')?.port, port);
  const ann = (dep.obj.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations;
  assert.equal(Number(ann['prometheus.io/port']), port);
  const prom = parseYaml(readFileSync('cluster/prometheus/prometheus-k8s.yml', 'utf8')) as { scrape_configs: { job_name: string; dns_sd_configs: { names: string[]; port: number }[] }[] };
  const sd = prom.scrape_configs.find((x) => x.job_name === 'vilm-worker')!.dns_sd_configs[0];
  assert.deepEqual(sd.names, [svc.name]);
  assert.equal(sd.port, port);
});
