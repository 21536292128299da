"""A client generated from proto/ with stock protoc (grpcio-tools), as a
mobile or partner team would generate one: create, list, upload with
client streaming, and approve against a running server.

Usage: python_client.py HOST:PORT EMPLOYEE_TOKEN MANAGER_TOKEN IMPORTER_TOKEN GENERATED_DIR
"""
import sys
import uuid

sys.path.insert(0, sys.argv[5])

import grpc  # noqa: E402
from timesheets.v1 import timesheets_pb2 as pb  # noqa: E402
from timesheets.v1 import timesheets_pb2_grpc as rpc  # noqa: E402


def main() -> None:
    target, employee, manager, importer = sys.argv[1:5]
    channel = grpc.insecure_channel(target)
    stub = rpc.TimesheetServiceStub(channel)

    def auth(token: str):
        return [("authorization", f"Bearer {token}")]

    project = f"python-{uuid.uuid4().hex[:8]}"
    created = stub.CreateTimesheet(
        pb.CreateTimesheetRequest(
            timesheet=pb.Timesheet(date="2026-11-27", project=project, hours=7.5),
            request_id=str(uuid.uuid4()),
        ),
        metadata=auth(employee),
        timeout=10,
    )
    assert created.id and not created.approved, created
    listed = stub.ListTimesheets(pb.ListTimesheetsRequest(project=project), metadata=auth(employee), timeout=10)
    assert [t.id for t in listed.timesheets] == [created.id], listed

    items = [
        pb.UploadTimesheetRequest(timesheet=pb.Timesheet(user_id="007", date=f"2017-05-1{i}", project=project, hours=5))
        for i in range(3)
    ]
    batch = stub.BatchUploadTimesheets(iter(items), metadata=auth(importer), timeout=10)
    assert len(batch.timesheets) == 3 and all(t.user_id == "007" for t in batch.timesheets), batch

    approved = stub.ApproveTimesheet(pb.ApproveTimesheetRequest(id=created.id), metadata=auth(manager), timeout=10)
    assert approved.approved and approved.approved_by == "manager@exampleco.com", approved

    try:
        stub.ListPendingApprovals(pb.ListPendingApprovalsRequest(), metadata=auth(employee), timeout=10)
        raise AssertionError("an employee must not list approvals")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    print(f"python client: created {created.id}, uploaded {len(batch.timesheets)}, approved {approved.id}")


if __name__ == "__main__":
    main()
