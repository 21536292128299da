/**
 * Where the API lives. The page normally talks to the server that served it
 * (same origin); `?api=http://host:port` points it elsewhere, which is how the
 * browser test exercises CORS from another origin.
 */
export interface ApiTarget {
  /** Origin plus optional path prefix, without a trailing slash. */
  readonly baseUrl: string;
  /** True when `?api=` overrides the page's own origin; the UI says so. */
  readonly overridden: boolean;
}

export function resolveApiTarget(location: Location): ApiTarget {
  const raw = new URLSearchParams(location.search).get("api");
  if (raw) {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Error(`The api parameter is not a URL: ${raw}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`The api parameter must be an http(s) URL: ${raw}`);
    }
    return { baseUrl: stripSlash(url.origin + url.pathname), overridden: url.origin !== location.origin };
  }
  return { baseUrl: stripSlash(location.origin), overridden: false };
}

function stripSlash(s: string): string {
  return s.replace(/\/+$/, "");
}
