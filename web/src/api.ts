import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { TimesheetService } from "./gen/timesheets/v1/timesheets_pb";
import type { Session } from "./session";

export type TimesheetClient = Client<typeof TimesheetService>;

/**
 * Deadline for every call, sent as `grpc-timeout` so the server gives up too.
 * Ten seconds is far above a healthy call and short enough that a hung
 * server shows "unavailable" instead of a spinner forever.
 */
const CALL_TIMEOUT_MS = 10_000;

/**
 * A client over gRPC-Web (binary), which tonic-web understands; the Connect
 * protocol is not used because tonic does not speak it.
 */
export function createTimesheetClient(baseUrl: string, session: Session): TimesheetClient {
  const bearer: Interceptor = (next) => async (req) => {
    const token = session.token;
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({
    baseUrl,
    useBinaryFormat: true,
    interceptors: [bearer],
    defaultTimeoutMs: CALL_TIMEOUT_MS,
  });
  return createClient(TimesheetService, transport);
}

/**
 * A random request id (UUID v4 form) for CreateTimesheet's idempotency key.
 * Uses getRandomValues, which unlike randomUUID also exists on plain-http
 * origins that are not "secure contexts".
 */
export function newRequestId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
