/** What the admin server needs from the daemon: the composition root builds and passes these. */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConfigView } from '../config/view.js';
import type { TaasError } from '../errors.js';
import type { EntryService } from '../entries/entry-service.js';
import type { Store } from '../store/types.js';
import type { LabelSeries } from '../observe/label-history.js';

/** One label's live state on one node, as the relay reports it (defined once, in the directory). */
export type { LabelLiveState as LabelState, NodeLiveState } from '../store/directory.js';
import type { NodeLiveState } from '../store/directory.js';

export interface AdminDeps {
  /** Start-time settings (listen address, data dir, TLS) are read once, at start. */
  config: ConfigView;
  store: Store;
  entries: EntryService;
  /** Live state, one element per node of the relay. */
  live: () => NodeLiveState[] | Promise<NodeLiveState[]>;
  logger: Logger;
  /** When given, served at GET /metrics (Prometheus text) to API keys with the `read` permission. */
  metrics?: Registry;
  setLogLevel?: (level: string) => void;
  /** A label's last hour, minute by minute, over every node (the page's label view). */
  history?: (label: string) => Promise<LabelSeries>;
  /** Why the node should take no traffic now (draining), or null; /readyz answers 503 with it. */
  notReady?: () => TaasError | null;
  /** A listening descriptor handed over by the daemon this one replaces (restart), instead of adminHost:adminPort. */
  listenFd?: number;
}
