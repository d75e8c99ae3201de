# License allow-list: the version carries a `license` tag (an SPDX id, e.g.
# `--tag license=Apache-2.0`) and it is one of the licenses below.
package modelwatch.gate

allowed_licenses := {"apache-2.0", "mit", "bsd-3-clause", "internal"}

deny contains "the version has no license tag; tag it with license=<SPDX id>" if {
	not input.version.tags.license
}

deny contains msg if {
	license := input.version.tags.license
	not allowed_licenses[lower(license)]
	msg := sprintf("license %q is not allowed; allowed: %v", [license, sort(allowed_licenses)])
}
