-- Rendering in the database what the API used to render in Python (issue 14: reads compiled
-- to one statement that builds the response's JSON). Each function states one Python rule
-- exactly, so that a value reads the same whichever path answered; tests compare the two.
-- Each is one expression, LANGUAGE sql, not STRICT and no more volatile than its body, so the
-- planner inlines it into the statement instead of calling a function per value (a call per
-- row cost more than the rest of a page's JSON). NULL in, NULL out, by the expressions.

-- datetime.isoformat() of a UTC datetime: microseconds only when there are some, "+00:00".
CREATE FUNCTION cdm_json_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', CASE WHEN date_trunc('second', t) = t
                                            THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'
                                            ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END)
$$;

-- The opaque cursor of domain/pagination.py: URL-safe base64 of its JSON, without padding.
CREATE FUNCTION cdm_cursor(payload text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT rtrim(translate(encode(convert_to(payload, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;

-- PurchaseSummary.average_order_value: total / orders to the cent, ties to even (Decimal's
-- quantize), on whole cents so that no intermediate rounding can decide a tie: q is the
-- truncated quotient in cents, r its remainder.
CREATE FUNCTION cdm_per_order(total numeric, orders bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN orders <> 0 THEN round((
           div(total * 100, orders)
           + CASE WHEN 2 * abs(total * 100 - div(total * 100, orders) * orders) > orders
                    OR (2 * abs(total * 100 - div(total * 100, orders) * orders) = orders
                        AND div(total * 100, orders) % 2 <> 0)
                  THEN sign(total) ELSE 0 END) / 100, 2) END
$$;

-- domain.access.mask, one function per MaskKind that keeps text.
CREATE FUNCTION cdm_mask_name(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN v = '' THEN '' ELSE left(v, 1) || '***' END
$$;

CREATE FUNCTION cdm_mask_email(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN v IS NULL THEN NULL
              WHEN v ~ '^([^@]?)[^@]*@(.+)$'
              THEN regexp_replace(v, '^([^@]?)[^@]*@(.+)$', '\1***@\2')
              ELSE '***' END
$$;

CREATE FUNCTION cdm_mask_phone(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT '***' || right(regexp_replace(v, '[^0-9]', '', 'g'), 2)
$$;

-- Any identifying value: masked as an e-mail, a phone number or a name, by its look.
CREATE FUNCTION cdm_mask_text(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN strpos(v, '@') > 0 THEN cdm_mask_email(v)
              WHEN length(regexp_replace(v, '[^0-9]', '', 'g')) >= 6 THEN cdm_mask_phone(v)
              ELSE cdm_mask_name(v) END
$$;
