-- The Checkout session a reservation was paid through, so that the donor's thanks page, the
-- cancel link and Stripe's `checkout.session.expired` find the reservation. One session per
-- reservation, and a session belongs to one reservation.
ALTER TABLE reservations ADD COLUMN checkout_session_id TEXT;
CREATE UNIQUE INDEX reservations_checkout_session ON reservations (checkout_session_id);
