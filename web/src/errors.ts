import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb";

export const SIGN_IN_AGAIN = "Your session has expired or the token is invalid — sign in again.";
export const UNAVAILABLE = "Service unavailable, retrying may help.";

/** What the UI should show for a failed call. */
export interface Problem {
  /** One sentence for the banner (or the form summary for field problems). */
  message: string;
  /** Field violations keyed by form field name (`hours`, `date` ...). */
  fields: Map<string, string>;
  /** The caller must sign in again: the token was missing, bad or expired. */
  signIn: boolean;
  /** INVALID_ARGUMENT: the input is at fault, shown next to the form. */
  invalid?: boolean;
}

/**
 * Turns any error from a call into plain words. Field paths from
 * google.rpc.BadRequest (`timesheet.hours`) become form field names
 * (`hours`); violations on other fields stay in the summary message.
 */
export function describe(err: unknown): Problem {
  const fields = new Map<string, string>();
  if (!(err instanceof ConnectError)) {
    const text = err instanceof Error ? err.message : String(err);
    return { message: text || "Something went wrong.", fields, signIn: false };
  }
  switch (err.code) {
    case Code.Unauthenticated:
      return { message: SIGN_IN_AGAIN, fields, signIn: true };
    case Code.PermissionDenied: {
      const scope = /requires scope (\S+)/.exec(err.rawMessage)?.[1];
      const message = scope ? `You need the ${scope} scope.` : "You are not allowed to do that.";
      return { message, fields, signIn: false };
    }
    case Code.InvalidArgument: {
      const other: string[] = [];
      for (const bad of err.findDetails(BadRequestSchema)) {
        for (const v of bad.fieldViolations) {
          const name = v.field.replace(/^timesheet\./, "");
          if (/^[a-z_]+$/.test(name) && v.field.startsWith("timesheet.")) {
            fields.set(name, joinMessages(fields.get(name), v.description));
          } else {
            other.push(`${v.field} ${v.description}`);
          }
        }
      }
      const message =
        other.length > 0
          ? `Please fix: ${other.join("; ")}.`
          : fields.size > 0
            ? "Please correct the highlighted fields."
            : err.rawMessage || "The request was not valid.";
      return { message, fields, signIn: false, invalid: true };
    }
    case Code.Unavailable:
      return { message: UNAVAILABLE, fields, signIn: false };
    case Code.DeadlineExceeded:
      return { message: "The service took too long to answer; retrying may help.", fields, signIn: false };
    case Code.NotFound:
      return { message: "That timesheet no longer exists.", fields, signIn: false };
    case Code.AlreadyExists:
      return {
        message: "This entry was already submitted with different values; reload the list before trying again.",
        fields,
        signIn: false,
      };
    case Code.FailedPrecondition:
      return { message: err.rawMessage || "The timesheet cannot be changed in its current state.", fields, signIn: false };
    case Code.Unknown:
      // fetch() itself failed: server down, wrong ?api= URL, or CORS refused.
      if (err.cause instanceof TypeError) {
        return { message: `Cannot reach the service (${err.cause.message}). ${UNAVAILABLE}`, fields, signIn: false };
      }
      break;
  }
  return { message: `Something went wrong (${Code[err.code] ?? err.code}). Please try again later.`, fields, signIn: false };
}

function joinMessages(a: string | undefined, b: string): string {
  return a ? `${a}; ${b}` : b;
}
