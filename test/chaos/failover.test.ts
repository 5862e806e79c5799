/**
 * Failover on real replication, as CloudNativePG does it (docs/cloudnativepg.md): a primary and a streaming
 * standby from Debian's Postgres 15, pingpong under load through a TCP forwarder standing in for the
 * Cluster's `-rw` Service; the primary is SIGKILLed, the standby promoted and the forwarder pointed at it,
 * as the operator and its Service would. The operator itself is not exercised: no instance manager, no
 * failure detection, no fencing of the old primary; the test does the operator's steps itself.
 *
 * What an answer proves about the count. pingpong answers `pong N` only after the UPDATE that counted the
 * ping has committed, and N is the count before that ping. Postgres with a synchronous standby
 * (`synchronous_standby_names = 'ANY 1 (standby)'`) reports a commit only once the standby has its WAL on
 * disk. So every acknowledged N must be below the promoted standby's count, and no N can come twice.
 * The count may also hold pings nobody saw acknowledged: the batch whose commit reached the standby but
 * whose answer died with the primary, or a batch that committed after pingpong's 1.2 s deadline had
 * already answered 503. Each such ping was sent by a client that got a 503 (pingpong never retries an
 * UPDATE), so acknowledged <= final count <= acknowledged + requests not answered 200.
 */
import type { ExecutionContext } from 'ava';
import { startForwarder } from '../helpers/forwarder';
import { startFunction } from '../helpers/functions';
import { type Exchange, HANG_MS, acknowledgedPongs, assertNoAcknowledgedPingLost, sleep, startPingLoad, waitForPong, within } from '../helpers/load';
import { SERVER_TOOLS, startReplicatedPostgres } from '../helpers/replication';
import { BUSY_MACHINE_SLACK_MS } from '../helpers/timing';
import { testNeeding } from '../helpers/tools';

// One scenario at a time: each runs two servers, pingpong and 32 clients on a shared 2-core machine.
const test = testNeeding(SERVER_TOOLS, "apt-get install -y postgresql (Debian's server in /usr/lib/postgresql/15/bin)", { serial: true });

const CLIENTS = 32;
const STEADY_MS = 2000;
/** How long the standby is cut off from the primary before the primary dies, in the runs that cut it off. */
const CUT_OFF_MS = 2000;
/**
 * Between the primary's death and the promotion: the operator's time to notice. CloudNativePG takes seconds
 * (its readiness probe, then the failover); one second is enough to see what pingpong does meanwhile.
 */
const NOTICE_MS = 1000;
// pingpong answers within its 1.2 s database deadline whatever Postgres does, 2 s as documented; the slack
// is for this shared machine (see timing.ts).
const GAP_ANSWER_MS = 2000 + BUSY_MACHINE_SLACK_MS;
// A pool connection waits at most 0.5 s before connecting again, and a batch started just before the
// forwarder was pointed at the new primary may wait out its 1.2 s deadline; the rest is the busy machine.
const RECOVERY_MS = 500 + 1200 + BUSY_MACHINE_SLACK_MS;
const REASON = /^database unavailable: [^\n]+\n$/;
/** A run takes about 20 s here (two servers started, 6 s of load); AVA's 60 s would fail a slow machine, not a bug. */
const SCENARIO_MS = 180_000;

interface Failover {
  exchanges: Exchange[];
  /** When the standby was cut off from the primary, in the runs that cut it off. */
  cutOffAt?: number;
  killedAt: number;
  /** When the forwarder was pointed at the promoted standby: the gap is killedAt..repointedAt. */
  repointedAt: number;
  recoveryMs: number;
  /** The promoted standby's count before any client could reach it: what survived the failover. */
  countAtPromotion: number;
  finalCount: number;
}

/**
 * The whole failover under load, with the checks every run shares: pingpong stays up and answers every
 * request with a pong or a 503, each 503 in the gap with a reason and in time, and it counts again on the new
 * primary within RECOVERY_MS without a restart.
 */
async function failover(t: ExecutionContext, { synchronous, cutOffFirst }: { synchronous: boolean; cutOffFirst: boolean }): Promise<Failover> {
  t.timeout(SCENARIO_MS);
  const servers = await startReplicatedPostgres(t, { synchronous });
  const readWrite = await startForwarder(t, servers.primary.port);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: servers.urlFor(readWrite.port) });
  const pid = pingpong.pid();
  const load = startPingLoad([pingpong.url], CLIENTS);
  const PINGPONG = 0; // its index in the load's URLs
  t.teardown(() => load.stop().then(() => undefined));
  await waitForPong(load, PINGPONG, Date.now(), 30_000); // the first one applies the migrations
  await sleep(STEADY_MS);

  let cutOffAt: number | undefined;
  if (cutOffFirst) {
    servers.link.hold();
    cutOffAt = Date.now();
    await sleep(CUT_OFF_MS);
    // However busy the machine, a ping sent after the cut has been answered before the primary dies: a pong from
    // an asynchronous primary, a 503 at the deadline from a synchronous one.
    const since = cutOffAt;
    await until(() => load.exchanges.some((e) => e.sentAt >= since && e.status === (synchronous ? 503 : 200)), 30_000, 'answer after the cut');
  }

  const killedAt = Date.now();
  await servers.primary.kill();
  readWrite.pointAt(undefined); // the dead pod leaves the Service's endpoints
  await sleep(NOTICE_MS);
  await servers.promoteStandby();
  const [{ n: countAtPromotion }] = await servers.standby.sql<[{ n: string }]>`select n from pings`;
  readWrite.pointAt(servers.standby.port); // the promoted pod is labelled primary and becomes the endpoint
  const repointedAt = Date.now();
  const recoveryMs = (await waitForPong(load, PINGPONG, repointedAt, RECOVERY_MS)) - repointedAt;
  await sleep(STEADY_MS);
  const exchanges = await load.stop();
  const [{ n: finalCount }] = await servers.standby.sql<[{ n: string }]>`select n from pings`;

  t.true(pingpong.running() && pingpong.pid() === pid, 'pingpong was never restarted: it recovered by itself');
  t.deepEqual(
    exchanges.filter((exchange) => exchange.error).slice(0, 3),
    [],
    `no connection error and no request unanswered after ${HANG_MS} ms: pingpong stayed up`,
  );
  t.deepEqual(
    exchanges.filter((exchange) => exchange.status !== 200 && exchange.status !== 503).slice(0, 3),
    [],
    'every answer is a pong or a 503: no 500',
  );
  const gap = within(exchanges, killedAt, repointedAt);
  t.true(gap.length > 0, `requests were answered in the gap (${gap.length})`);
  t.deepEqual(
    gap.filter((exchange) => exchange.status !== 503 || !REASON.test(exchange.body!)).slice(0, 3),
    [],
    'between the kill and the repointing every answer is a 503 with a one-line reason',
  );
  const slowest = Math.max(...gap.map((exchange) => exchange.answeredAt - exchange.sentAt));
  t.true(slowest < GAP_ANSWER_MS, `the slowest answer in the gap took ${slowest} ms`);

  t.log(
    `${synchronous ? 'synchronous' : 'asynchronous'} standby${cutOffFirst ? `, cut off ${CUT_OFF_MS} ms before the kill` : ''}: ` +
      `requests ${exchanges.length}, acknowledged ${exchanges.filter((e) => e.status === 200).length}, ` +
      `503s ${exchanges.filter((e) => e.status === 503).length} (${gap.length} in the gap), ` +
      `gap (kill to repointing) ${repointedAt - killedAt} ms, slowest answer in the gap ${slowest} ms, ` +
      `first pong ${recoveryMs} ms after the repointing, count at promotion ${countAtPromotion}, final count ${finalCount}`,
  );
  return { exchanges, cutOffAt, killedAt, repointedAt, recoveryMs, countAtPromotion: Number(countAtPromotion), finalCount: Number(finalCount) };
}

/** Every acknowledged ping is in the promoted standby's count, none twice, and the count holds nothing unsent. */
function assertEveryAcknowledgedPingKept(t: ExecutionContext, run: Failover): void {
  const beforePromotion = acknowledgedPongs(run.exchanges.filter((exchange) => exchange.answeredAt <= run.repointedAt));
  const missing = beforePromotion.filter((n) => n >= run.countAtPromotion);
  t.deepEqual(missing.slice(0, 5), [], `every ping the old primary acknowledged is in the promoted standby's count ${run.countAtPromotion}`);

  const account = assertNoAcknowledgedPingLost(t, run.exchanges, run.finalCount);
  const unacknowledged = run.exchanges.filter((exchange) => exchange.status !== 200).length;
  const countedUnacknowledged = run.finalCount - account.acknowledged;
  t.true(
    countedUnacknowledged <= unacknowledged,
    `the final count ${run.finalCount} holds the ${account.acknowledged} acknowledged pings and ${countedUnacknowledged} more, ` +
      `at most one for each of the ${unacknowledged} requests answered 503: nothing counted twice`,
  );
  t.log(
    `acknowledged ${account.acknowledged}, acknowledged by the old primary ${beforePromotion.length}, lost 0, counted but answered 503 ${countedUnacknowledged} ` +
      `(of which at the failover: ${run.countAtPromotion - beforePromotion.length})`,
  );
}

test('synchronous standby: primary SIGKILLed under load, standby promoted, -rw repointed: no acknowledged ping lost or counted twice, 503s in the gap, recovery without a restart', async (t) => {
  const run = await failover(t, { synchronous: true, cutOffFirst: false });
  assertEveryAcknowledgedPingKept(t, run);
  const lastPongBefore = Math.max(...acknowledgedPongs(run.exchanges.filter((exchange) => exchange.answeredAt <= run.killedAt)));
  const firstPongAfter = Math.min(...acknowledgedPongs(run.exchanges.filter((exchange) => exchange.sentAt >= run.repointedAt)));
  t.true(firstPongAfter > lastPongBefore, `the count goes on from where it was (${lastPongBefore}, then ${firstPongAfter})`);
});

test('synchronous standby cut off before the primary dies: nothing is acknowledged meanwhile, so nothing acknowledged is lost', async (t) => {
  const run = await failover(t, { synchronous: true, cutOffFirst: true });
  // A ping sent after the cut has its commit's WAL held in the link: no standby confirms it, so it cannot be acknowledged.
  const meanwhile = within(run.exchanges, run.cutOffAt!, run.killedAt);
  t.true(meanwhile.length > 0, `requests were answered while the standby was cut off (${meanwhile.length})`);
  t.deepEqual(
    meanwhile.filter((exchange) => exchange.status !== 503 || !/did not answer within 1200 ms/.test(exchange.body!)).slice(0, 3),
    [],
    'while the standby is cut off every ping waits for it and is answered 503 at the deadline',
  );
  assertEveryAcknowledgedPingKept(t, run);
});

// Without a synchronous standby, can the same failover lose acknowledged pings? Yes, but only when the standby is
// behind at the moment the primary dies. On this machine an asynchronous standby on loopback is a millisecond
// or less behind, so a plain kill under load loses a ping only when it lands in that millisecond: a test waiting
// for that would pass or fail by luck. Cutting the standby off first (as a slow network or a busy standby
// would) makes it behind for certain, and the same cut-off is harmless with a synchronous standby (above).
test('asynchronous standby cut off before the primary dies: the pings acknowledged meanwhile are lost, which is why the Cluster is synchronous', async (t) => {
  const run = await failover(t, { synchronous: false, cutOffFirst: true });
  const meanwhile = acknowledgedPongs(within(run.exchanges, run.cutOffAt!, run.repointedAt));
  const lost = meanwhile.filter((n) => n >= run.countAtPromotion);
  t.true(meanwhile.length > 0, 'the primary acknowledged pings while its standby was cut off');
  t.is(lost.length, meanwhile.length, `every ping acknowledged after the cut (${meanwhile.length}) is missing from the promoted standby's count`);
  const twice = acknowledgedPongs(run.exchanges).length - new Set(acknowledgedPongs(run.exchanges)).size;
  t.true(twice > 0, 'the new primary hands out their numbers again');
  t.log(`acknowledged during the cut-off and lost ${lost.length}, numbers acknowledged twice ${twice}`);
});

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const giveUpAt = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`no ${what} within ${ms} ms`);
    await sleep(20);
  }
}
