<?php

// examples/laravel/config/pollgate.php — the application's side of pollgate. Each value must agree with the
// gateway's pollgate.conf; the comments name the key it must match.

return [
    // The very file the gateway's jwt_key_file names (the HMAC key is the file's bytes, exactly: a trailing
    // newline is part of the key). Readable by the PHP user; keep it out of the repository.
    'jwt_key_file' => env('POLLGATE_JWT_KEY_FILE', '/etc/pollgate/jwt.key'),

    // = jwt_audience / jwt_issuer in pollgate.conf. Leave null when those are not set there: the gateway
    // refuses a token with an `aud` it was not told to expect.
    'audience' => env('POLLGATE_JWT_AUDIENCE'),
    'issuer' => env('POLLGATE_JWT_ISSUER'),

    // Seconds a token lives. Short: a stolen token is worth little, and the page renews it by itself
    // (renewUrl) when the gateway answers 401. Entitlement is checked on every read regardless.
    'ttl' => (int) env('POLLGATE_JWT_TTL', 300),

    // 'cookie': an HttpOnly cookie scoped to /pollgate/ carries the token (scripts never see it);
    // 'header': the page receives the token (data attribute) and sends it as Authorization: Bearer.
    'credential' => env('POLLGATE_CREDENTIAL', 'cookie'),

    // = auth_cookie in pollgate.conf (default pollgate_token). Add it to EncryptCookies' exceptions:
    // Laravel encrypts every cookie it sets unless told otherwise, and the gateway needs the JWT itself.
    'cookie' => env('POLLGATE_COOKIE', 'pollgate_token'),

    // The path nginx serves pollgate under (examples/nginx/pollgate-location.conf).
    'path' => '/pollgate/',
];
