-- What each access revision moved: one row per revision (`sluice_state.access_rev`), written
-- in the transaction that takes it. `request_id` names the request whose grant moved (opened
-- active, approved, revoked, expired...); NULL says something else moved (policy, principals,
-- tokens, gateway sessions or services), which the other instances reload whole. An instance
-- that finds every revision since its own named by a request applies only those requests to
-- its access snapshot instead of reloading every active grant. Old rows are pruned; an
-- instance that falls behind them reloads whole.
CREATE TABLE access_changes (
    rev         BIGINT PRIMARY KEY,
    request_id  TEXT
);
