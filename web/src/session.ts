/**
 * The access token, kept in sessionStorage (per tab, gone when the tab
 * closes) and keyed by API base URL, so a token obtained for one server is
 * never sent to another one chosen with `?api=`.
 */
export class Session {
  readonly #key: string;
  #token: string | null;
  readonly #listeners: Array<() => void> = [];

  constructor(apiBaseUrl: string) {
    this.#key = `timesheets.token:${apiBaseUrl}`;
    this.#token = readStorage(this.#key);
  }

  get token(): string | null {
    return this.#token;
  }

  set(token: string): void {
    this.#token = token;
    writeStorage(this.#key, token);
    this.#emit();
  }

  clear(): void {
    this.#token = null;
    writeStorage(this.#key, null);
    this.#emit();
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  #emit(): void {
    for (const l of this.#listeners) l();
  }
}

/** What the UI shows about a token. Read without verifying: display only. */
export interface TokenInfo {
  subject: string | null;
  scopes: string[];
  expiresAt: Date | null;
}

export function peekToken(token: string): TokenInfo {
  const info: TokenInfo = { subject: null, scopes: [], expiresAt: null };
  const parts = token.split(".");
  if (parts.length !== 3) return info;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(json);
    if (typeof claims !== "object" || claims === null) return info;
    const c = claims as Record<string, unknown>;
    // The email may sit in a namespaced claim (`https://example.com/email`).
    const emailKey = Object.keys(c).find((k) => k === "email" || k.endsWith("/email"));
    const email = emailKey === undefined ? undefined : c[emailKey];
    if (typeof email === "string") info.subject = email;
    else if (typeof c.sub === "string") info.subject = c.sub;
    if (typeof c.scope === "string") info.scopes = c.scope.split(" ").filter(Boolean);
    else if (Array.isArray(c.scp)) info.scopes = c.scp.filter((s): s is string => typeof s === "string");
    if (Array.isArray(c.permissions)) {
      for (const p of c.permissions) if (typeof p === "string" && !info.scopes.includes(p)) info.scopes.push(p);
    }
    if (typeof c.exp === "number") info.expiresAt = new Date(c.exp * 1000);
  } catch {
    // Not a JWT we can read; the server is the judge anyway.
  }
  return info;
}

export type Persona = "employee" | "manager";

/** Raised when the server has no dev issuer (not started with --dev). */
export class DevModeUnavailable extends Error {}

/**
 * Fetches a token from the dev issuer (`timesheets serve --dev` only).
 * A plain GET with no custom headers, so it needs no CORS preflight.
 */
export async function fetchDevToken(apiBaseUrl: string, persona: Persona, signal?: AbortSignal): Promise<string> {
  const url = `${apiBaseUrl}/dev/token?persona=${encodeURIComponent(persona)}`;
  const res = await fetch(url, { signal, cache: "no-store" });
  if (res.status === 404) throw new DevModeUnavailable("Dev sign-in is not available: the server is not running with --dev.");
  if (!res.ok) throw new Error(`Dev sign-in failed: HTTP ${res.status}`);
  const body: unknown = await res.json();
  const token = (body as { access_token?: unknown } | null)?.access_token;
  if (typeof token !== "string" || token === "") throw new Error("Dev sign-in failed: no access_token in the answer");
  return token;
}

function readStorage(key: string): string | null {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function writeStorage(key: string, value: string | null): void {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    // Storage disabled: the token still lives in memory for this page.
  }
}
