//! Managers see pending entries and approve them; approval is final.

use tonic::Code;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn a_manager_approves_a_pending_timesheet_once(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        let mut manager = app.manager();
        let older = alice.create_timesheet(create("2026-11-02", "Website", 4.0)).await.expect("create").into_inner();
        let newer = alice.create_timesheet(create("2026-11-03", "Website", 4.0)).await.expect("create").into_inner();

        let pending = manager.list_pending_approvals(ListPendingApprovalsRequest::default()).await.expect("pending").into_inner();
        assert_eq!(pending.timesheets, [older.clone(), newer.clone()], "oldest first");
        // Read once before the approval, so a server that caches rows has this one.
        let before = alice.get_timesheet(GetTimesheetRequest { id: older.id.clone() }).await.expect("get").into_inner();
        assert_eq!(before, older);

        let approved = manager.approve_timesheet(ApproveTimesheetRequest { id: older.id.clone() }).await.expect("approve").into_inner();
        assert!(approved.approved);
        assert_eq!(approved.approved_by, "manager@exampleco.com");
        assert!(approved.approve_time.is_some());
        assert_eq!((approved.id.as_str(), approved.user_id.as_str()), (older.id.as_str(), "alice@exampleco.com"));

        let again = manager.approve_timesheet(ApproveTimesheetRequest { id: older.id.clone() }).await.expect("approve again").into_inner();
        assert_eq!(again, approved, "approving twice changes nothing");

        let pending = manager.list_pending_approvals(ListPendingApprovalsRequest::default()).await.expect("pending").into_inner();
        assert_eq!(pending.timesheets, [newer]);

        let seen_by_owner = alice.get_timesheet(GetTimesheetRequest { id: older.id.clone() }).await.expect("get").into_inner();
        assert_eq!(seen_by_owner, approved);
    }

    async fn an_approved_timesheet_cannot_be_deleted(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        let id = alice.create_timesheet(create("2026-11-02", "Website", 4.0)).await.expect("create").into_inner().id;
        app.manager().approve_timesheet(ApproveTimesheetRequest { id: id.clone() }).await.expect("approve");
        let cached = alice.get_timesheet(GetTimesheetRequest { id: id.clone() }).await.expect("get").into_inner();
        let status = alice.delete_timesheet(DeleteTimesheetRequest { id: id.clone() }).await.expect_err("approved");
        assert_eq!(status.code(), Code::FailedPrecondition);
        let after = alice.get_timesheet(GetTimesheetRequest { id }).await.expect("still there").into_inner();
        assert_eq!(after, cached);
    }

    async fn approving_an_unknown_id_is_not_found(app: &TestApp) {
        let status = app.manager().approve_timesheet(ApproveTimesheetRequest { id: "no-such-id".into() }).await.expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound);
    }
}
