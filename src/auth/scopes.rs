//! The method → required scope table, read from the proto.
//!
//! Each RPC declares `option (timesheets.v1.required_scope) = "...";`. The
//! table is built once at startup from the embedded descriptor, so the
//! policy lives in the contract and cannot drift from it. A method with no
//! declared scope is refused; a path that names no method of the service
//! has no handler to protect, and the service answers it UNIMPLEMENTED.

use foldhash::{HashMap, HashMapExt as _};

use anyhow::{Context, bail};
use prost_reflect::{DescriptorPool, Value};

/// Full name of the scope option extension.
pub const REQUIRED_SCOPE_OPTION: &str = "timesheets.v1.required_scope";

/// What a call to a gRPC path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy<'a> {
    /// A method that requires this scope.
    Scope(&'a str),
    /// A method that declares no scope, or a path outside the table's
    /// services: every call is refused.
    Undeclared,
    /// A path under one of the table's services that names none of its
    /// methods: no handler to protect (tonic dispatches on the exact path).
    NotAMethod,
}

/// Required scope per gRPC path (`/package.Service/Method`); `None` for a
/// method that declares none.
#[derive(Debug, Clone, Default)]
pub struct ScopeTable {
    by_path: HashMap<String, Option<String>>,
    /// `/package.Service/` of every service read.
    services: Vec<String>,
}

impl ScopeTable {
    /// Reads the `required_scope` option of every method of `services`.
    pub fn from_descriptors(pool: &DescriptorPool, services: &[&str]) -> anyhow::Result<Self> {
        let option = pool
            .get_extension_by_name(REQUIRED_SCOPE_OPTION)
            .with_context(|| format!("descriptor set lacks the {REQUIRED_SCOPE_OPTION} option"))?;
        let mut by_path = HashMap::new();
        let mut prefixes = Vec::new();
        for name in services {
            let service = pool
                .get_service_by_name(name)
                .with_context(|| format!("service {name} is not in the descriptor set"))?;
            prefixes.push(format!("/{}/", service.full_name()));
            for method in service.methods() {
                let path = format!("/{}/{}", service.full_name(), method.name());
                let options = method.options();
                if !options.has_extension(&option) {
                    tracing::warn!(
                        method = method.full_name(),
                        "no required_scope: every call is refused"
                    );
                    by_path.insert(path, None);
                    continue;
                }
                let Value::String(scope) = options.get_extension(&option).into_owned() else {
                    bail!(
                        "{REQUIRED_SCOPE_OPTION} of {} is not a string",
                        method.full_name()
                    );
                };
                if scope.trim().is_empty() || scope.contains(' ') {
                    bail!(
                        "{REQUIRED_SCOPE_OPTION} of {} must be one scope",
                        method.full_name()
                    );
                }
                by_path.insert(path, Some(scope));
            }
        }
        Ok(Self {
            by_path,
            services: prefixes,
        })
    }

    /// What a call to `path` needs.
    pub fn policy(&self, path: &str) -> Policy<'_> {
        match self.by_path.get(path) {
            Some(Some(scope)) => Policy::Scope(scope),
            Some(None) => Policy::Undeclared,
            None if self.services.iter().any(|s| path.starts_with(s.as_str())) => {
                Policy::NotAMethod
            }
            // Default deny: a service wrapped without being read into the
            // table must not go unchecked.
            None => Policy::Undeclared,
        }
    }

    /// Every (path, scope) pair of the methods that declare one, sorted,
    /// for tests and documentation.
    pub fn entries(&self) -> Vec<(&str, &str)> {
        let mut entries: Vec<_> = self
            .by_path
            .iter()
            .filter_map(|(p, s)| Some((p.as_str(), s.as_deref()?)))
            .collect();
        entries.sort_unstable();
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{SERVICE_NAME, descriptor_pool};

    #[test]
    fn the_scope_table_is_exactly_what_the_proto_declares() {
        let table =
            ScopeTable::from_descriptors(descriptor_pool(), &[SERVICE_NAME]).expect("table builds");
        let s = "/timesheets.v1.TimesheetService/";
        let expected: Vec<(String, &str)> = [
            ("ApproveTimesheet", "approve:timesheets"),
            ("BatchUploadTimesheets", "batch:upload"),
            ("CreateTimesheet", "create:timesheets"),
            ("DeleteTimesheet", "delete:timesheets"),
            ("GetTimesheet", "read:timesheets"),
            ("ListPendingApprovals", "approve:timesheets"),
            ("ListTimesheets", "read:timesheets"),
            ("UploadTimesheet", "batch:upload"),
        ]
        .into_iter()
        .map(|(m, scope)| (format!("{s}{m}"), scope))
        .collect();
        let got: Vec<(String, &str)> = table
            .entries()
            .into_iter()
            .map(|(p, scope)| (p.to_owned(), scope))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn paths_under_the_service_that_name_no_method_are_not_methods() {
        let table =
            ScopeTable::from_descriptors(descriptor_pool(), &[SERVICE_NAME]).expect("table builds");
        for path in [
            "/timesheets.v1.TimesheetService/DropAll",
            "/timesheets.v1.TimesheetService/GetTimesheet/",
            "/timesheets.v1.TimesheetService/gettimesheet",
        ] {
            assert_eq!(table.policy(path), Policy::NotAMethod, "{path}");
        }
        assert_eq!(
            table.policy("/timesheets.v1.TimesheetService/GetTimesheet"),
            Policy::Scope("read:timesheets")
        );
        // Outside the table's services nothing passes unchecked.
        for path in [
            "/grpc.health.v1.Health/Check",
            "/timesheets.v1.TimesheetServiceX/GetTimesheet",
            "/",
        ] {
            assert_eq!(table.policy(path), Policy::Undeclared, "{path}");
        }
    }

    #[test]
    fn a_method_without_a_declared_scope_is_refused_not_skipped() {
        // The real descriptors plus a service whose one method declares no scope.
        let mut pool = descriptor_pool().clone();
        let file = prost_types::FileDescriptorProto {
            name: Some("test/open.proto".into()),
            package: Some("test".into()),
            dependency: vec!["timesheets/v1/timesheets.proto".into()],
            syntax: Some("proto3".into()),
            service: vec![prost_types::ServiceDescriptorProto {
                name: Some("Open".into()),
                method: vec![prost_types::MethodDescriptorProto {
                    name: Some("Unguarded".into()),
                    input_type: Some(".timesheets.v1.GetTimesheetRequest".into()),
                    output_type: Some(".timesheets.v1.Timesheet".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        pool.add_file_descriptor_proto(file).expect("test file");
        let table = ScopeTable::from_descriptors(&pool, &["test.Open", SERVICE_NAME])
            .expect("table builds");
        assert_eq!(table.policy("/test.Open/Unguarded"), Policy::Undeclared);
        assert_eq!(table.policy("/test.Open/Other"), Policy::NotAMethod);
        assert!(
            table
                .entries()
                .iter()
                .all(|(path, _)| !path.starts_with("/test.Open/"))
        );
    }
}
