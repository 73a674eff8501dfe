// Package db holds sitewatch's schema: goose SQL migrations embedded in the
// binary, and Migrate to apply them.
package db
