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
    /// A method that declares no scope: every call is refused.
    Undeclared,
    /// Not a method of the service: nothing to authorize.
    NotAMethod,
}

/// Required scope per gRPC path (`/package.Service/Method`); `None` for a
/// method that declares none.
#[derive(Debug, Clone, Default)]
pub struct ScopeTable {
    by_path: HashMap<String, Option<String>>,
}

impl ScopeTable {
    /// Reads the `required_scope` option of every method of `services`.
    pub fn from_descriptors(pool: &DescriptorPool, services: &[&str]) -> anyhow::Result<Self> {
        let option = pool
            .get_extension_by_name(REQUIRED_SCOPE_OPTION)
            .with_context(|| format!("descriptor set lacks the {REQUIRED_SCOPE_OPTION} option"))?;
        let mut by_path = HashMap::new();
        for name in services {
            let service = pool
                .get_service_by_name(name)
                .with_context(|| format!("service {name} is not in the descriptor set"))?;
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
        Ok(Self { by_path })
    }

    /// What a call to `path` needs.
    pub fn policy(&self, path: &str) -> Policy<'_> {
        match self.by_path.get(path) {
            Some(Some(scope)) => Policy::Scope(scope),
            Some(None) => Policy::Undeclared,
            None => Policy::NotAMethod,
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
    fn paths_that_name_no_method_of_the_service_are_not_methods() {
        let table =
            ScopeTable::from_descriptors(descriptor_pool(), &[SERVICE_NAME]).expect("table builds");
        for path in [
            "/timesheets.v1.TimesheetService/DropAll",
            "/timesheets.v1.TimesheetService/GetTimesheet/",
            "/timesheets.v1.TimesheetService/gettimesheet",
            "/grpc.health.v1.Health/Check",
        ] {
            assert_eq!(table.policy(path), Policy::NotAMethod, "{path}");
        }
        assert_eq!(
            table.policy("/timesheets.v1.TimesheetService/GetTimesheet"),
            Policy::Scope("read:timesheets")
        );
    }

    #[test]
    fn a_method_without_a_declared_scope_is_refused_not_skipped() {
        let mut table = ScopeTable::default();
        table.by_path.insert("/p.S/Open".into(), None);
        assert_eq!(table.policy("/p.S/Open"), Policy::Undeclared);
        assert!(table.entries().is_empty());
    }
}
