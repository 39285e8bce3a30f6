import { BerthError, type PlanStep } from '@berth/sys';
import { isNamespaceKind, JOIN_ORDER, NAMESPACES, type NamespaceKind } from './kinds.js';

export interface NamespaceRequest {
  type: string;
  path?: string;
}

export interface NamespacePlan {
  /** Namespaces to create, as clone(2) flags. */
  cloneFlags: number;
  /** Namespaces to create, by kind. */
  create: NamespaceKind[];
  /** Existing namespaces to join before clone, in the order they must be joined. */
  join: Array<{ kind: NamespaceKind; path: string }>;
  /** Steps for the launcher before its clone: setns into each joined namespace. */
  steps: PlanStep[];
}

/**
 * Plans `linux.namespaces`: which to create (clone flags) and which to join
 * (setns before clone, in a safe order). A namespace absent from the list is
 * shared with the runtime, as the OCI spec says.
 *
 * `privileged` (the runtime has CAP_SYS_ADMIN on the host, and so in every user namespace):
 * the user namespace is joined after the others (the mount namespace still last), as runc
 * does when it can. A namespace the joined user namespace does not own is then joined with
 * the host's rights: a time namespace (made before the clone that makes the user namespace,
 * so the host's user namespace owns it), or a network namespace made apart from it. From
 * inside the joined user namespace, setns to those is refused (EPERM). Without privilege the
 * user namespace comes first, where its capabilities are the only ones there are.
 */
export function planNamespaces(
  requests: readonly NamespaceRequest[] = [],
  options: { privileged?: boolean } = {},
): NamespacePlan {
  const seen = new Set<string>();
  const create: NamespaceKind[] = [];
  const join: Array<{ kind: NamespaceKind; path: string }> = [];
  requests.forEach((ns, i) => {
    if (!isNamespaceKind(ns.type)) {
      throw new BerthError(
        `linux.namespaces[${i}].type: ${JSON.stringify(ns.type)} is not a namespace type`,
        {
          code: 'EINVALIDSPEC',
        },
      );
    }
    if (seen.has(ns.type)) {
      throw new BerthError(`linux.namespaces[${i}].type: ${ns.type} namespace is listed twice`, {
        code: 'EINVALIDSPEC',
      });
    }
    seen.add(ns.type);
    if (ns.path) join.push({ kind: ns.type, path: ns.path });
    else create.push(ns.type);
  });
  const rank = (k: NamespaceKind) =>
    options.privileged && k === 'user' ? JOIN_ORDER.indexOf('mount') - 0.5 : JOIN_ORDER.indexOf(k);
  join.sort((a, b) => rank(a.kind) - rank(b.kind));
  const cloneFlags = create.reduce((flags, kind) => flags | NAMESPACES[kind].flag, 0);
  const steps: PlanStep[] = join.map(({ kind, path }) => ({
    op: 'setns',
    path,
    nstype: NAMESPACES[kind].flag,
    describe: `join ${kind} namespace ${path}`,
  }));
  return { cloneFlags, create, join, steps };
}
