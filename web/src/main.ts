import "./app.css";
import { createTimesheetClient, type TimesheetClient } from "./api";
import { resolveApiTarget } from "./config";
import { byId } from "./dom";
import { employeeView } from "./employee";
import { describe, type Problem } from "./errors";
import { managerView } from "./manager";
import { fetchDevToken, peekToken, Session, type Persona } from "./session";

/** What the views share: the client and the page-wide messages. */
export interface App {
  readonly client: TimesheetClient;
  /** Shows a failed call plainly; signs out on UNAUTHENTICATED. */
  fail(err: unknown, opts?: { inlineInvalid?: boolean }): Problem;
  clearBanner(): void;
  /** A polite announcement for screen readers and sighted users alike. */
  announce(message: string): void;
}

type View = "employee" | "manager";

function start(): void {
  const banner = byId("banner");
  const status = byId("status");
  const showBanner = (message: string) => {
    banner.textContent = message;
    banner.hidden = false;
  };

  let target;
  try {
    target = resolveApiTarget(window.location);
  } catch (err) {
    showBanner(err instanceof Error ? err.message : String(err));
    return;
  }
  if (target.overridden) {
    const note = byId("api-target");
    note.textContent = `API: ${target.baseUrl}`;
    note.hidden = false;
  }

  const session = new Session(target.baseUrl);
  const app: App = {
    client: createTimesheetClient(target.baseUrl, session),
    fail(err, opts) {
      const problem = describe(err);
      if (problem.signIn) session.clear();
      if (!(opts?.inlineInvalid && problem.invalid)) showBanner(problem.message);
      return problem;
    },
    clearBanner() {
      banner.hidden = true;
      banner.textContent = "";
    },
    announce(message) {
      status.textContent = message;
    },
  };

  const views = { employee: employeeView(app), manager: managerView(app) };
  const tabs = { employee: byId("tab-employee"), manager: byId("tab-manager") };
  const panels = { employee: byId("employee-view"), manager: byId("manager-view") };
  let current: View = "employee";

  function show(view: View): void {
    current = view;
    for (const v of ["employee", "manager"] as const) {
      panels[v].hidden = v !== view;
      if (v === view) tabs[v].setAttribute("aria-current", "page");
      else tabs[v].removeAttribute("aria-current");
    }
    if (session.token) views[view].load();
  }
  tabs.employee.addEventListener("click", () => {
    app.clearBanner();
    show("employee");
  });
  tabs.manager.addEventListener("click", () => {
    app.clearBanner();
    show("manager");
  });

  function render(): void {
    const token = session.token;
    const signedIn = token !== null;
    byId("tabs").hidden = !signedIn;
    byId("who").hidden = !signedIn;
    if (!signedIn) {
      panels.employee.hidden = true;
      panels.manager.hidden = true;
      return;
    }
    const info = peekToken(token);
    const who = info.subject ? `Signed in as ${info.subject}` : "Signed in with a pasted token";
    const scopes = info.scopes.length > 0 ? ` · ${info.scopes.join(", ")}` : "";
    byId("who-text").textContent = who + scopes;
    show(info.scopes.includes("approve:timesheets") ? "manager" : info.scopes.length > 0 ? "employee" : current);
  }

  session.onChange(render);
  byId("sign-out").addEventListener("click", () => {
    session.clear();
    app.announce("Signed out.");
  });

  const devButtons = [byId<HTMLButtonElement>("dev-employee"), byId<HTMLButtonElement>("dev-manager")];
  const devSignIn = async (persona: Persona) => {
    devButtons.forEach((b) => (b.disabled = true));
    try {
      const token = await fetchDevToken(target.baseUrl, persona, AbortSignal.timeout(10_000));
      app.clearBanner();
      session.set(token);
      app.announce(`Signed in as ${persona} (dev).`);
    } catch (err) {
      showBanner(err instanceof Error && err.name !== "TypeError" ? err.message : `Dev sign-in failed: cannot reach ${target.baseUrl}.`);
    } finally {
      devButtons.forEach((b) => (b.disabled = false));
    }
  };
  devButtons[0].addEventListener("click", () => void devSignIn("employee"));
  devButtons[1].addEventListener("click", () => void devSignIn("manager"));

  const tokenForm = byId<HTMLFormElement>("token-form");
  const tokenInput = byId<HTMLInputElement>("token-input");
  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = tokenInput.value.trim().replace(/^Bearer\s+/i, "");
    if (!token) return;
    tokenInput.value = "";
    app.clearBanner();
    session.set(token);
    app.announce("Using the pasted token.");
  });

  render();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
