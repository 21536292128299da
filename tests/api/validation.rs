//! Bad input is INVALID_ARGUMENT with field violations, and stores nothing.

use tonic::Code;

use crate::helpers::*;
use crate::on_both_backends;

struct Case {
    description: &'static str,
    timesheet: Option<Timesheet>,
    field: &'static str,
}

fn cases() -> Vec<Case> {
    let ok = || timesheet("2026-11-27", "Website", 7.5);
    vec![
        Case {
            description: "no timesheet at all",
            timesheet: None,
            field: "timesheet.date",
        },
        Case {
            description: "missing date",
            timesheet: Some(Timesheet {
                date: String::new(),
                ..ok()
            }),
            field: "timesheet.date",
        },
        Case {
            description: "not a calendar date",
            timesheet: Some(Timesheet {
                date: "2026-02-30".into(),
                ..ok()
            }),
            field: "timesheet.date",
        },
        Case {
            description: "day-first date",
            timesheet: Some(Timesheet {
                date: "27-11-2026".into(),
                ..ok()
            }),
            field: "timesheet.date",
        },
        Case {
            description: "date-time without offset",
            timesheet: Some(Timesheet {
                date: "2026-11-27T10:00:00".into(),
                ..ok()
            }),
            field: "timesheet.date",
        },
        Case {
            description: "zero hours",
            timesheet: Some(Timesheet { hours: 0.0, ..ok() }),
            field: "timesheet.hours",
        },
        Case {
            description: "negative hours",
            timesheet: Some(Timesheet {
                hours: -1.0,
                ..ok()
            }),
            field: "timesheet.hours",
        },
        Case {
            description: "more than a day",
            timesheet: Some(Timesheet {
                hours: 24.5,
                ..ok()
            }),
            field: "timesheet.hours",
        },
        Case {
            description: "NaN hours",
            timesheet: Some(Timesheet {
                hours: f64::NAN,
                ..ok()
            }),
            field: "timesheet.hours",
        },
        Case {
            description: "infinite hours",
            timesheet: Some(Timesheet {
                hours: f64::INFINITY,
                ..ok()
            }),
            field: "timesheet.hours",
        },
        Case {
            description: "blank project",
            timesheet: Some(Timesheet {
                project: "   ".into(),
                ..ok()
            }),
            field: "timesheet.project",
        },
        Case {
            description: "project too long",
            timesheet: Some(Timesheet {
                project: "p".repeat(201),
                ..ok()
            }),
            field: "timesheet.project",
        },
        Case {
            description: "control character in project",
            timesheet: Some(Timesheet {
                project: "Web\u{1b}site".into(),
                ..ok()
            }),
            field: "timesheet.project",
        },
        Case {
            description: "notes too long",
            timesheet: Some(Timesheet {
                notes: "n".repeat(2001),
                ..ok()
            }),
            field: "timesheet.notes",
        },
        Case {
            description: "NUL in notes",
            timesheet: Some(Timesheet {
                notes: "a\0b".into(),
                ..ok()
            }),
            field: "timesheet.notes",
        },
    ]
}

on_both_backends! {
    async fn invalid_timesheets_are_refused_field_by_field_and_nothing_is_stored(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        for case in cases() {
            let status = alice
                .create_timesheet(CreateTimesheetRequest { timesheet: case.timesheet, request_id: String::new() })
                .await
                .expect_err(case.description);
            assert_eq!(status.code(), Code::InvalidArgument, "{}", case.description);
            assert!(violated_fields(&status).iter().any(|f| f == case.field), "{}: {:?}", case.description, violated_fields(&status));
        }
        let listed = alice.list_timesheets(ListTimesheetsRequest::default()).await.expect("list").into_inner();
        assert!(listed.timesheets.is_empty());
    }

    async fn boundary_values_are_accepted(app: &TestApp) {
        let mut alice = app.employee("alice@exampleco.com");
        for (description, ts) in [
            ("a full day", timesheet("2026-11-27", "Website", 24.0)),
            ("a leap day", timesheet("2024-02-29", "Website", 0.25)),
            ("a 200-character project", timesheet("2026-11-27", &"p".repeat(200), 1.0)),
            ("2000 characters of notes", Timesheet { notes: "n".repeat(2000), ..timesheet("2026-11-27", "Website", 1.0) }),
        ] {
            alice
                .create_timesheet(CreateTimesheetRequest { timesheet: Some(ts), request_id: String::new() })
                .await
                .unwrap_or_else(|s| panic!("{description}: {s:?}"));
        }
        let trimmed = alice
            .create_timesheet(create("2026-11-27", "  Website  ", 1.0))
            .await
            .expect("trimmed")
            .into_inner();
        assert_eq!(trimmed.project, "Website");
    }

    async fn ids_must_be_given(app: &TestApp) {
        let status = app.employee("alice@exampleco.com").get_timesheet(GetTimesheetRequest::default()).await.expect_err("empty id");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["id"]);
    }
}
