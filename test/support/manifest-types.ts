import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import ts from "typescript";
import type { KubernetesObject } from "./kustomize.js";

/**
 * The TypeScript interfaces kubernetes-models ships for each kind: module and interface name.
 * Their JSON-schema validators accept unknown fields (Kubernetes itself ignores them with a
 * warning), so a misspelt field would pass; TypeScript's excess-property check does not.
 */
const TYPES: Record<string, [string, string]> = {
  "v1/Namespace": ["kubernetes-models/v1/Namespace", "INamespace"],
  "v1/ServiceAccount": ["kubernetes-models/v1/ServiceAccount", "IServiceAccount"],
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "IConfigMap"],
  "v1/Secret": ["kubernetes-models/v1/Secret", "ISecret"],
  "v1/Service": ["kubernetes-models/v1/Service", "IService"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "IDeployment"],
  "apps/v1/StatefulSet": ["kubernetes-models/apps/v1/StatefulSet", "IStatefulSet"],
  "policy/v1/PodDisruptionBudget": [
    "kubernetes-models/policy/v1/PodDisruptionBudget",
    "IPodDisruptionBudget",
  ],
  "networking.k8s.io/v1/NetworkPolicy": [
    "kubernetes-models/networking.k8s.io/v1/NetworkPolicy",
    "INetworkPolicy",
  ],
  "keda.sh/v1alpha1/ScaledObject": ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "IScaledObject"],
  "monitoring.coreos.com/v1/PodMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
    "IPodMonitor",
  ],
  "monitoring.coreos.com/v1/ServiceMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
    "IServiceMonitor",
  ],
};

/**
 * Type-checks each object as a fresh object literal of its kind's interface and returns the
 * problems (unknown fields at any depth, wrong types), each naming the object. Empty when all
 * are well-formed.
 */
export function typeCheckManifests(objects: KubernetesObject[]): string[] {
  const lines: string[] = [];
  const owners: string[] = [];
  for (const [i, o] of objects.entries()) {
    const type = TYPES[`${o.apiVersion}/${o.kind}`];
    owners.push(`${o.kind} ${o.metadata.name}`);
    // One line per object, so a diagnostic's line names its object.
    lines.push(
      type
        ? `import type { ${type[1]} as T${i} } from "${type[0]}"; export const o${i}: T${i} = ${JSON.stringify(o)};`
        : `export const o${i}: never = ${JSON.stringify(o.kind)}; // no interface for ${o.apiVersion} ${o.kind}`,
    );
  }
  // Resolve packages from the repository root, where kubernetes-models is installed.
  const root = dirname(createRequire(import.meta.url).resolve("kubernetes-models/package.json"));
  const fileName = join(root, "..", "..", "memscore-manifests.ts");
  const source = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === fileName ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (!d.file || d.start === undefined) return text;
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const owner = d.file.fileName === fileName ? owners[line] : d.file.fileName;
    return `${owner ?? "?"}: ${text}`;
  });
}
