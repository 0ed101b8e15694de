-- The intake finds a gift by the payment intent a Checkout session names, to learn from its
-- own records, without asking Stripe, that a late session event has nothing left to post.
CREATE INDEX contributions_by_payment_intent ON contributions (payment_intent_id);
