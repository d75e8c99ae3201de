# What a version must satisfy before it takes an alias, all in one policy
# (a model has exactly one): ready status, minimum metrics, lineage,
# license, no open rollback recommendation, and, for production, no drift
# in its latest evaluation.
package modelwatch.gate

min_metrics := {"auc": 0.80}

allowed_licenses := {"apache-2.0", "mit", "internal"}

deny contains msg if {
	input.version.status != "ready"
	msg := sprintf("version status is %q, not ready", [input.version.status])
}

deny contains msg if {
	some name, minimum in min_metrics
	not input.metrics[name]
	msg := sprintf("evaluation metric %q is missing from the lineage", [name])
}

deny contains msg if {
	some name, minimum in min_metrics
	input.metrics[name] < minimum
	msg := sprintf("evaluation metric %q is %v, below the minimum %v", [name, input.metrics[name], minimum])
}

deny contains "the lineage has no code commit" if {
	not input.lineage.code_commit
}

deny contains msg if {
	license := object.get(input.version.tags, "license", "none")
	not allowed_licenses[lower(license)]
	msg := sprintf("license %q is not in the allow-list", [license])
}

deny contains msg if {
	some r in input.recommendations
	r.kind == "rollback"
	msg := sprintf("open rollback recommendation %v: %s", [r.id, r.reason])
}

deny contains msg if {
	input.alias == "production"
	input.drift.dataset_drift
	msg := sprintf("the latest drift evaluation (%s) found drift in %v", [input.drift.evaluation_id, input.drift.drifted_features])
}

warn contains "the version has never been evaluated for drift" if {
	input.drift == null
}

warn contains msg if {
	input.drift.age_seconds > 86400
	msg := sprintf("the latest drift evaluation is %v hours old", [input.drift.age_seconds / 3600])
}
