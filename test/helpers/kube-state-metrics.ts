/**
 * A stand-in for kube-state-metrics, which needs a cluster: real HTTP on a free port, serving the two
 * series of the CronJob exercises/postgres-backup that PostgresBackupStale reads, named and labelled as
 * kube-state-metrics does (internal/store/cronjob.go). Like it, it leaves out the last-success series
 * while the CronJob has never succeeded.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

export interface CronJobState {
  /** Unix seconds. */
  createdAt: number;
  /** Unix seconds; undefined while no run has succeeded. */
  lastSuccessAt?: number;
}

export interface FakeKubeStateMetrics {
  /** `host:port`, for a scrape target. */
  address: string;
  setCronJob(state: CronJobState): void;
}

export async function fakeKubeStateMetrics(t: ExecutionContext, initial: CronJobState): Promise<FakeKubeStateMetrics> {
  let state = initial;
  const labels = '{namespace="exercises",cronjob="postgres-backup"}';
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    const lines = [
      '# HELP kube_cronjob_created Unix creation timestamp',
      '# TYPE kube_cronjob_created gauge',
      `kube_cronjob_created${labels} ${state.createdAt}`,
    ];
    if (state.lastSuccessAt !== undefined) {
      lines.push(
        '# HELP kube_cronjob_status_last_successful_time LastSuccessfulTime keeps information of when was the last time the job was completed successfully.',
        '# TYPE kube_cronjob_status_last_successful_time gauge',
        `kube_cronjob_status_last_successful_time${labels} ${state.lastSuccessAt}`,
      );
    }
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, setCronJob: (next) => (state = next) };
}
