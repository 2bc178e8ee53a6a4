-- Rendering in the database what the API used to render in Python (issue 14: reads compiled
-- to one statement that builds the response's JSON). Each function states one Python rule
-- exactly, so that a value reads the same whichever path answered; tests compare the two.
-- LANGUAGE sql and no more volatile than their bodies, so the planner inlines them.

-- datetime.isoformat() of a UTC datetime: microseconds only when there are some, "+00:00".
CREATE FUNCTION cdm_json_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
      || CASE WHEN date_part('microseconds', t AT TIME ZONE 'UTC')::bigint % 1000000 = 0 THEN ''
              ELSE to_char(t AT TIME ZONE 'UTC', '.US') END
      || '+00:00'
$$;

-- The opaque cursor of domain/pagination.py: URL-safe base64 of its JSON, without padding.
CREATE FUNCTION cdm_cursor(payload text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT rtrim(translate(encode(convert_to(payload, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;

-- PurchaseSummary.average_order_value: total / orders to the cent, ties to even (Decimal's
-- quantize), computed on whole cents so that no intermediate rounding can decide a tie.
CREATE FUNCTION cdm_per_order(total numeric, orders bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN orders = 0 THEN NULL ELSE round((q + CASE
           WHEN 2 * abs(r) > orders OR (2 * abs(r) = orders AND q % 2 <> 0) THEN sign(cents)
           ELSE 0 END) / 100, 2) END
    FROM (SELECT total * 100 AS cents) c,
         LATERAL (SELECT div(cents, orders) AS q) d,
         LATERAL (SELECT cents - q * orders AS r) e
$$;

-- domain.access.mask, one function per MaskKind that keeps text.
CREATE FUNCTION cdm_mask_name(v text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN v = '' THEN '' ELSE left(v, 1) || '***' END
$$;

CREATE FUNCTION cdm_mask_email(v text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce((SELECT m[1] || '***@' || m[2] FROM regexp_match(v, '^([^@]?)[^@]*@(.+)$') m),
                  '***')
$$;

CREATE FUNCTION cdm_mask_phone(v text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT '***' || right(regexp_replace(v, '[^0-9]', '', 'g'), 2)
$$;

-- Any identifying value: masked as an e-mail, a phone number or a name, by its look.
CREATE FUNCTION cdm_mask_text(v text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN strpos(v, '@') > 0 THEN cdm_mask_email(v)
              WHEN length(regexp_replace(v, '[^0-9]', '', 'g')) >= 6 THEN cdm_mask_phone(v)
              ELSE cdm_mask_name(v) END
$$;
