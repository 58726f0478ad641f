"""The contract clause by clause: each promise in `llmgine.database.store` and the suite tests
that a store breaking only that promise fails.

Keys are the sentences of `store.py`'s docstrings, whitespace folded; a sentence
that promises nothing is in `NOT_PROMISES` instead. This repository's
``tests/test_clause_map.py`` checks that every sentence is in one of the two,
that no key is stale and that every test named here exists, so a new clause
cannot land without a test.
"""

from __future__ import annotations

CLAUSES: dict[str, tuple[str, ...]] = {
    # --- the module: instants, payloads, errors ---
    "Instants: every ``datetime`` a store returns in its own columns is aware UTC; every "
    "``datetime`` it is given may be naive (local time) or aware.": (
        "test_event_log::test_every_instant_read_back_is_aware_utc",
        "test_event_log::test_naive_bounds_are_local_time",
        "test_restart::test_next_due_is_the_earliest_claimable_instant",
        "test_datetimes::test_a_naive_due_time_is_local_time_with_fold_respected",
        "test_datetimes::test_due_queries_ignore_the_process_time_zone",
    ),
    "Event payloads come back exactly as they went in (see `llmgine.database.codec`).": (
        "test_payloads::test_a_value_comes_back_identical",
        "test_payloads::test_any_scheduled_event_comes_back_identical",
        "test_datetimes::test_datetime_fields_come_back_exactly",
    ),
    "Errors: a method that could not reach or use its database raises `StoreUnavailableError` "
    "(retrying may succeed) or `RejectedDataError` (the database refused this data; retrying "
    "the same data will not help).": (
        "test_failures::test_a_database_that_keeps_failing_makes_every_call_raise_store_unavailable",
    ),
    "A method that raises has changed nothing it promised to change.": (
        "test_failures::test_a_failed_add_stores_the_events_exactly_once_when_retried",
        "test_failures::test_a_failed_claim_leaves_the_events_claimable",
        "test_failures::test_a_failed_renew_leaves_the_events_with_their_owner",
        "test_failures::test_a_failed_release_leaves_the_events_with_their_owner",
        "test_failures::test_a_failed_complete_keeps_the_events_stored_and_held",
        "test_failures::test_a_failed_take_all_leaves_every_event_stored",
    ),
    # --- the records ---
    "Position in the log; ids grow in insertion order.": (
        "test_event_log::test_entries_come_back_in_insertion_order_with_growing_ids",
    ),
    "The stored payload as raw text, exactly as the database holds it.": (
        "test_poison_rows::test_the_quarantined_row_keeps_its_data",
    ),
    "The event's fields as plain JSON (see `llmgine.database.log_json`): ISO strings for "
    "datetimes, lists for tuples, a readable repr for values JSON cannot hold.": (
        "test_payloads::test_log_keeps_an_unencodable_value_as_a_readable_repr",
    ),
    # --- ScheduledEventStore ---
    "An event is *claimable* when it is not quarantined and either has no owner or its "
    "owner's lease has expired.": (
        "test_leases::test_claim_never_takes_a_quarantined_row",
        "test_leases::test_claim_skips_events_another_owner_holds",
        "test_leases::test_claim_takes_over_expired_leases_of_several_owners",
    ),
    "Claims are fenced: a method given an owner acts only on events that owner currently holds.": (
        "test_leases::test_an_owner_method_leaves_an_unowned_event_alone",
        "test_leases::test_an_owner_method_leaves_another_owners_event_and_lease_alone",
        "test_leases::test_a_stale_owner_whose_event_was_taken_over_changes_nothing",
        "test_leases::test_an_owner_method_leaves_a_quarantined_row_alone",
        "test_leases::test_an_owner_past_its_lease_still_holds_what_no_one_took_over",
    ),
    "Store ``events``; durable when this returns.": (
        "test_restart::test_a_scheduled_event_survives_a_restart",
        "test_crash::test_kill_9_at_random_moments_loses_no_acknowledged_event",
    ),
    "Idempotent by ``event_id``: an event whose id is already stored is left as it was (its "
    "due time is not moved).": (
        "test_restart::test_adding_an_event_twice_keeps_the_first_due_time",
        "test_leases::test_re_adding_a_claimed_event_keeps_its_owner_and_lease",
        "test_leases::test_re_adding_a_taken_over_event_keeps_the_new_owner",
        "test_leases::test_re_adding_a_quarantined_event_leaves_it_quarantined",
        "test_leases::test_re_adding_a_batch_of_stored_events_adds_only_the_new_ones",
    ),
    "Raises `UnstorableEventError` before writing anything if an event cannot be encoded.": (
        "test_payloads::test_an_unstorable_value_is_refused_naming_class_and_field",
    ),
    "Take up to ``limit`` claimable events due at or before ``due_before``.": (
        "test_leases::test_due_before_is_inclusive_to_the_microsecond",
        "test_leases::test_a_limited_claim_leaves_the_rest_for_the_next",
        "test_restart::test_claim_with_no_room_takes_nothing",
        "test_poison_rows::test_a_limited_claim_reaches_past_a_backlog_of_poison_rows",
    ),
    "Returns them ordered by due instant, then by insertion, and marks them owned by "
    "``owner`` until now + ``lease``.": (
        "test_leases::test_a_limited_claim_takes_equal_due_times_in_insertion_order_not_id_order",
        "test_leases::test_a_limited_claim_takes_the_earliest_of_a_shuffled_backlog",
        "test_leases::test_claim_owns_an_event_until_exactly_now_plus_the_lease",
        "test_leases::test_claim_counts_the_lease_from_its_own_now_not_the_due_time",
    ),
    "Atomic: two concurrent claims never return the same event.": (
        "test_concurrency::test_concurrent_claims_never_return_the_same_event",
    ),
    "Rows that cannot be decoded are quarantined instead of returned.": (
        "test_poison_rows::test_claim_quarantines_it_and_claims_the_rest",
    ),
    "Extend ``owner``'s leases to now + ``lease``; return the ids still held.": (
        "test_leases::test_renew_extends_from_now_not_from_the_old_expiry",
        "test_leases::test_renew_with_a_shorter_lease_shortens_it",
        "test_leases::test_renew_returns_every_id_the_owner_holds_and_no_other",
    ),
    "An event missing from the result is no longer ``owner``'s (its lease expired and "
    "another owner claimed it, or it was completed) and must not be delivered by ``owner``.": (
        "test_leases::test_a_stale_owner_whose_event_was_taken_over_changes_nothing",
        "test_leases::test_renew_past_the_lease_holds_the_event_again_from_now",
        "test_restart::test_renew_returns_the_ids_the_owner_still_holds",
    ),
    "With ``event_ids``, only those of them ``owner`` holds; without, every one.": (
        "test_delivery::test_release_of_chosen_ids_gives_up_only_those_the_owner_holds",
    ),
    "The current instant on the clock leases are measured by (aware UTC).": (
        "test_delivery::test_the_store_clock_is_the_one_leases_are_measured_on",
    ),
    "``claim``, ``renew`` and ``next_due`` compare and extend leases on this clock: a "
    "database server's clock where the store uses it, else the host's.": (
        "test_delivery::test_the_store_clock_is_the_one_leases_are_measured_on",
        "test_delivery::test_a_process_clock_off_by_45_s_neither_fires_early_nor_steals_leases",
    ),
    "A scheduler measures its own clock against it, so a process whose clock is off neither "
    "fires early nor loses its leases.": (
        "test_delivery::test_a_process_clock_off_by_45_s_neither_fires_early_nor_steals_leases",
    ),
    "Give up the events ``owner`` holds, making them claimable at once.": (
        "test_leases::test_released_events_are_claimable_at_the_same_instant",
        "test_leases::test_release_past_the_lease_frees_the_event",
    ),
    "Returns how many were released; a stale owner releases nothing.": (
        "test_leases::test_release_counts_only_the_owners_events",
        "test_leases::test_a_stale_owner_whose_event_was_taken_over_changes_nothing",
    ),
    "Delete delivered events that ``owner`` holds; return how many.": (
        "test_leases::test_complete_deletes_exactly_the_owners_given_events",
        "test_leases::test_complete_of_nothing_deletes_nothing",
        "test_leases::test_complete_past_the_lease_deletes_the_event",
    ),
    "Ids not held by ``owner`` are left untouched, so a stale owner cannot delete an event "
    "another owner has claimed.": (
        "test_leases::test_complete_deletes_exactly_the_owners_given_events",
        "test_leases::test_a_stale_owner_whose_event_was_taken_over_changes_nothing",
    ),
    "Remove and return every claimable event, ordered by due instant.": (
        "test_restart::test_unfinished_events_come_back_once_in_due_order",
        "test_restart::test_claimed_events_are_held_from_other_owners_and_take_all",
        "test_datetimes::test_take_all_orders_by_instant_across_zones",
    ),
    "Atomic: concurrent callers never both receive one event, and an event added "
    "concurrently is either returned or left stored, never deleted unseen.": (
        "test_concurrency::test_concurrent_restores_and_claims_deliver_each_event_once",
    ),
    "Rows that cannot be decoded are quarantined, never deleted.": (
        "test_poison_rows::test_take_all_quarantines_it_and_restores_the_rest",
        "test_poison_rows::test_the_quarantined_row_is_never_deleted",
    ),
    "The earliest due instant among claimable events, or None if none.": (
        "test_restart::test_next_due_is_the_earliest_claimable_instant",
        "test_restart::test_events_of_an_expired_lease_are_restored_and_counted_due",
        "test_leases::test_take_all_and_next_due_see_a_lease_end_exactly_as_claim_does",
        "test_poison_rows::test_the_quarantined_row_is_skipped_from_then_on",
    ),
    "Every quarantined row, in insertion order; only reads (no tables: []).": (
        "test_poison_rows::test_several_quarantined_rows_are_listed_in_insertion_order_each_with_its_reason",
        "test_restart::test_a_store_only_read_from_finds_nothing_and_stays_empty",
    ),
    "Only reads: on a database without the tables it returns None and creates nothing.": (
        "test_restart::test_a_store_only_read_from_finds_nothing_and_stays_empty",
    ),
    "Only reads: on a database without the tables it returns [] and creates nothing.": (
        "test_restart::test_a_store_only_read_from_finds_nothing_and_stays_empty",
    ),
    "Release resources this store created.": ("test_restart::test_closing_twice_is_harmless",),
    "Idempotent.": ("test_restart::test_closing_twice_is_harmless",),
    # --- EventLog ---
    "Record ``events`` in order; durable when this returns.": (
        "test_event_log::test_entries_come_back_in_insertion_order_with_growing_ids",
        "test_payloads::test_log_reads_in_insertion_order_not_time_order",
    ),
    "Idempotent by ``event_id``: retrying never duplicates an entry.": (
        "test_event_log::test_re_appending_overlapping_batches_logs_each_event_once",
        "test_payloads::test_log_append_is_idempotent_by_event_id",
    ),
    "A value that cannot be encoded is recorded as its repr rather than rejected.": (
        "test_payloads::test_log_keeps_an_unencodable_value_as_a_readable_repr",
    ),
    "Entries in insertion order, filtered.": (
        "test_event_log::test_read_returns_exactly_the_entries_the_filters_select",
    ),
    "``since`` is inclusive and ``until`` exclusive, both on the event's timestamp; "
    "``after_id`` returns only entries after that id (paging).": (
        "test_event_log::test_read_returns_exactly_the_entries_the_filters_select",
        "test_event_log::test_read_pages_through_any_filter_with_after_id_and_limit",
    ),
    "Delete entries whose timestamp is before ``older_than``; return how many.": (
        "test_event_log::test_purge_deletes_by_timestamp_not_by_position",
        "test_event_log::test_purge_keeps_an_entry_exactly_at_the_cutoff",
    ),
    "Works in batches of ``batch_size`` rows, one transaction each, so a large purge never "
    "holds a long lock.": ("test_event_log::test_purge_commits_batch_by_batch",),
    "Delete all but the ``keep`` newest entries (by insertion); return how many.": (
        "test_event_log::test_trim_keeps_the_newest_by_insertion_not_by_timestamp",
    ),
    "In batches of ``batch_size``, one transaction each, oldest first.": (
        "test_event_log::test_trim_commits_batch_by_batch_oldest_first",
    ),
}
"""Each promising sentence of `llmgine.database.store` -> ``module::test`` names that check it."""

NOT_PROMISES = frozenset(
    {
        "The store contract: what any backend must do to keep llmgine's promises.",
        "Two Protocols.",
        "`ScheduledEventStore` keeps scheduled events until they are delivered; `EventLog` "
        "keeps a record of published events.",
        "The SQLAlchemy store (`llmgine.database.sqlstore`) and the in-memory store "
        "(`llmgine.database.memory`) implement both; the conformance suite "
        "(`llmgine_conformance`) checks any implementation against this page.",
        "A stored scheduled event that cannot be restored, kept with the reason.",
        "One event as the event log recorded it.",
        "Keeps scheduled events until they are delivered, safely for many owners.",
        "An append-only record of published events.",
    }
)
"""Sentences that name or describe rather than promise."""
