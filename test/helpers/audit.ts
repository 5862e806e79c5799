/** Reading `npm audit --json`: which high or critical advisories the documentation does not explain. */

/** The part of npm audit's JSON report (auditReportVersion 2) that we read. */
export interface AuditReport {
  vulnerabilities?: Record<string, { severity: string; via: (string | { title: string; url: string; severity: string })[] }>;
  metadata?: { vulnerabilities: Record<string, number>; dependencies: { prod: number } };
  /** Set instead of the above when the registry would not audit. */
  error?: { summary?: string; detail?: string };
  message?: string;
}

const SERIOUS = new Set(['high', 'critical']);

/**
 * One line per high or critical advisory whose id (the GHSA-... at the end of its URL) the documentation
 * (`docs/reliability.md`, Dependency audit) does not name. A package listed only because it depends on another (`via` a package name) is judged by that one.
 */
export function unexplainedAdvisories(report: AuditReport, explanations: string): string[] {
  const lines = new Set<string>();
  for (const [name, vulnerability] of Object.entries(report.vulnerabilities ?? {})) {
    for (const via of vulnerability.via) {
      if (typeof via === 'string' || !SERIOUS.has(via.severity)) continue;
      const id = /GHSA(-[0-9a-z]{4}){3}/.exec(via.url)?.[0] ?? via.url;
      if (!explanations.includes(id)) lines.add(`${name}: ${via.severity}: ${via.title} (${id})`);
    }
  }
  return [...lines];
}

/** Why the registry gave no report, or undefined when it did. */
export function auditUnavailable(report: AuditReport): string | undefined {
  if (report.metadata?.vulnerabilities) return undefined;
  return report.error?.summary || report.message || 'npm audit gave no report';
}
