import { newRequestId } from "./api";
import { byId, formatHours, h } from "./dom";
import type { Timesheet } from "./gen/timesheets/v1/timesheets_pb";
import type { App } from "./main";

/** Entries per ListTimesheets page; "Load more" fetches the next. */
const PAGE_SIZE = 50;
const FIELDS = ["date", "project", "hours", "notes"] as const;

/** The employee view: the entry form and the caller's own timesheets. */
export function employeeView(app: App): { load(): void } {
  const form = byId<HTMLFormElement>("create-form");
  const submit = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
  const formError = byId("create-error");
  const rows = byId("mine-rows");
  const empty = byId("mine-empty");
  const more = byId<HTMLButtonElement>("mine-more");
  const dateInput = byId<HTMLInputElement>("f-date");
  dateInput.value = today();

  // One idempotency key per logical entry: kept while the user retries the
  // same values (a double click or a retry after UNAVAILABLE stores the entry
  // once), replaced after a success or any edit.
  let requestId = newRequestId();
  let busy = false;
  form.addEventListener("input", () => {
    requestId = newRequestId();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    clearErrors();
    const data = new FormData(form);
    const hoursRaw = String(data.get("hours") ?? "").trim();
    const timesheet = {
      date: String(data.get("date") ?? ""),
      project: String(data.get("project") ?? ""),
      // An empty or unparsable number goes as 0, which the server rejects
      // with a message next to the field: the server is the one validator.
      hours: hoursRaw === "" ? 0 : Number(hoursRaw),
      notes: String(data.get("notes") ?? ""),
    };
    busy = true;
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    try {
      const saved = await app.client.createTimesheet({ timesheet, requestId });
      requestId = newRequestId();
      form.reset();
      dateInput.value = timesheet.date;
      app.clearBanner();
      app.announce(`Saved ${formatHours(saved.hours)} h on ${saved.project} for ${saved.date}.`);
      load();
    } catch (err) {
      const problem = app.fail(err, { inlineInvalid: true });
      if (problem.invalid) showErrors(problem.fields, problem.message);
    } finally {
      busy = false;
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
    }
  });

  function clearErrors(): void {
    formError.textContent = "";
    for (const name of FIELDS) {
      byId(`e-${name}`).textContent = "";
      byId(`f-${name}`).removeAttribute("aria-invalid");
    }
  }

  function showErrors(fields: Map<string, string>, summary: string): void {
    let first: HTMLElement | null = null;
    for (const name of FIELDS) {
      const text = fields.get(name);
      if (!text) continue;
      const input = byId(`f-${name}`);
      const label = form.querySelector(`label[for=f-${name}]`)?.firstChild?.textContent?.trim() ?? name;
      byId(`e-${name}`).textContent = `${label} ${text}`;
      input.setAttribute("aria-invalid", "true");
      first ??= input;
    }
    formError.textContent = summary;
    first?.focus();
  }

  let generation = 0;
  let nextToken = "";

  async function load(append = false): Promise<void> {
    const mine = ++generation;
    more.hidden = true;
    try {
      const res = await app.client.listTimesheets({ pageSize: PAGE_SIZE, pageToken: append ? nextToken : "" });
      if (mine !== generation) return;
      if (!append) rows.replaceChildren();
      rows.append(...res.timesheets.map(row));
      empty.hidden = rows.childElementCount > 0;
      nextToken = res.nextPageToken;
      more.hidden = nextToken === "";
    } catch (err) {
      if (mine === generation) app.fail(err);
    }
  }

  byId("mine-refresh").addEventListener("click", () => void load());
  more.addEventListener("click", () => void load(true));
  return { load: () => void load() };
}

function row(t: Timesheet): HTMLTableRowElement {
  return h(
    "tr",
    { "data-testid": "timesheet-row", "data-id": t.id, "data-project": t.project },
    h("td", {}, t.date),
    h("td", {}, t.project),
    h("td", { class: "num" }, formatHours(t.hours)),
    h("td", { class: "notes" }, t.notes),
    h(
      "td",
      {},
      t.approved
        ? h("span", { class: "pill ok", "data-testid": "status-approved", title: t.approvedBy ? `Approved by ${t.approvedBy}` : undefined }, "Approved")
        : h("span", { class: "pill", "data-testid": "status-pending" }, "Pending"),
    ),
  );
}

function today(): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
