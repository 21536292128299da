import { byId, formatHours, h } from "./dom";
import type { Timesheet } from "./gen/timesheets/v1/timesheets_pb";
import type { App } from "./main";

/** Entries per ListPendingApprovals page; "Load more" fetches the next. */
const PAGE_SIZE = 50;

/** The manager view: every user's pending entries, each with Approve. */
export function managerView(app: App): { load(): void } {
  const rows = byId("pending-rows");
  const empty = byId("pending-empty");
  const more = byId<HTMLButtonElement>("pending-more");
  let generation = 0;
  let nextToken = "";

  async function load(append = false): Promise<void> {
    const mine = ++generation;
    more.hidden = true;
    try {
      const res = await app.client.listPendingApprovals({ pageSize: PAGE_SIZE, pageToken: append ? nextToken : "" });
      if (mine !== generation) return;
      if (!append) rows.replaceChildren();
      rows.append(...res.timesheets.map(row));
      updateEmpty();
      nextToken = res.nextPageToken;
      more.hidden = nextToken === "";
    } catch (err) {
      if (mine === generation) {
        rows.replaceChildren();
        empty.hidden = true;
        app.fail(err);
      }
    }
  }

  function updateEmpty(): void {
    empty.hidden = rows.childElementCount > 0;
  }

  function row(t: Timesheet): HTMLTableRowElement {
    const approve = h(
      "button",
      { type: "button", class: "primary small", "data-testid": "approve-button", "aria-label": `Approve ${t.project} on ${t.date} for ${t.userId}` },
      "Approve",
    );
    const tr = h(
      "tr",
      { "data-testid": "approval-row", "data-id": t.id, "data-project": t.project },
      h("td", {}, t.date),
      h("td", {}, t.userId),
      h("td", {}, t.project),
      h("td", { class: "num" }, formatHours(t.hours)),
      h("td", { class: "notes" }, t.notes),
      h("td", {}, approve),
    );
    approve.addEventListener("click", async () => {
      approve.disabled = true;
      approve.setAttribute("aria-busy", "true");
      try {
        const done = await app.client.approveTimesheet({ id: t.id });
        tr.remove();
        updateEmpty();
        app.clearBanner();
        app.announce(`Approved ${formatHours(done.hours)} h on ${done.project} for ${done.userId}.`);
      } catch (err) {
        approve.disabled = false;
        app.fail(err);
      } finally {
        approve.removeAttribute("aria-busy");
      }
    });
    return tr;
  }

  byId("pending-refresh").addEventListener("click", () => void load());
  more.addEventListener("click", () => void load(true));
  return { load: () => void load() };
}
