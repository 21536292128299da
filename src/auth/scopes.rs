//! The method → required scope table, read from the proto.
//!
//! Each RPC declares `option (timesheets.v1.required_scope) = "...";`. The
//! table is built once at startup from the embedded descriptor, so the
//! policy lives in the contract and cannot drift from it. A method with no
//! declared scope is absent from the table and therefore refused.

use foldhash::{HashMap, HashMapExt as _};

use anyhow::{Context, bail};
use prost_reflect::{DescriptorPool, Value};

/// Full name of the scope option extension.
pub const REQUIRED_SCOPE_OPTION: &str = "timesheets.v1.required_scope";

/// Required scope per gRPC path (`/package.Service/Method`).
#[derive(Debug, Clone, Default)]
pub struct ScopeTable {
    by_path: HashMap<String, String>,
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
                let options = method.options();
                if !options.has_extension(&option) {
                    tracing::warn!(
                        method = method.full_name(),
                        "no required_scope: every call is refused"
                    );
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
                by_path.insert(format!("/{}/{}", service.full_name(), method.name()), scope);
            }
        }
        Ok(Self { by_path })
    }

    /// The scope a call to `path` needs; `None` means the call is refused.
    pub fn required(&self, path: &str) -> Option<&str> {
        self.by_path.get(path).map(String::as_str)
    }

    /// Every (path, scope) pair, sorted, for tests and documentation.
    pub fn entries(&self) -> Vec<(&str, &str)> {
        let mut entries: Vec<_> = self
            .by_path
            .iter()
            .map(|(p, s)| (p.as_str(), s.as_str()))
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
    fn unknown_methods_have_no_scope_and_are_refused() {
        let table =
            ScopeTable::from_descriptors(descriptor_pool(), &[SERVICE_NAME]).expect("table builds");
        assert_eq!(
            table.required("/timesheets.v1.TimesheetService/DropAll"),
            None
        );
        assert_eq!(table.required("/grpc.health.v1.Health/Check"), None);
    }
}
