-- Deliveries of the Teams, Okta and sign-in hooks, by the sender's own id (Teams message id,
-- Okta eventId, webhook-id): each is processed once; a replay is refused and changes nothing.
CREATE TABLE hook_deliveries (
    channel      TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (channel, delivery_id)
);
CREATE INDEX hook_deliveries_by_time ON hook_deliveries (received_at);
