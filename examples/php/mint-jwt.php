<?php
/*
 * examples/php/mint-jwt.php — mint a short-lived HS256 JWT that pollgate accepts, in plain PHP (no package:
 * hash_hmac and base64url only).
 *
 * The function pollgate_jwt() is what an application copies (e.g. into a Laravel service or helper); run as
 * a script it prints one token:
 *
 *   php mint-jwt.php USER_ID [TTL_SECONDS] [--secret-file=PATH] [--aud=AUDIENCE] [--iss=ISSUER]
 *
 * The secret is the exact bytes of the file named by --secret-file or $POLLGATE_JWT_SECRET_FILE (the same
 * file as the gateway's jwt_key_file: a trailing newline is part of the secret on both sides), else the
 * value of $POLLGATE_JWT_SECRET. --aud/--iss default to $POLLGATE_JWT_AUDIENCE/$POLLGATE_JWT_ISSUER and must
 * match the gateway's jwt_audience/jwt_issuer. TTL defaults to 300 seconds; keep it short: the token is a
 * bearer credential until it expires (a negative TTL mints an already expired token, for tests).
 */

declare(strict_types=1);

function pollgate_base64url(string $bytes): string
{
    return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
}

/**
 * An HS256 JWT for $userId valid for $ttl seconds: claims sub (the user id, as a decimal string), iat, exp,
 * and aud/iss when given. Throws InvalidArgumentException on a bad user id or a secret under 32 bytes.
 */
function pollgate_jwt(int|string $userId, string $secret, int $ttl = 300, ?string $aud = null,
                      ?string $iss = null, ?int $now = null): string
{
    $sub = (string)$userId;
    if (!preg_match('/^[1-9][0-9]{0,18}$/D', $sub) || (strlen($sub) === 19 && strcmp($sub, '9223372036854775807') > 0)) {
        throw new InvalidArgumentException('user id must be a positive 64-bit integer');
    }
    if (strlen($secret) < 32) {
        throw new InvalidArgumentException('the HS256 secret must be at least 32 bytes');
    }
    $now ??= time();
    $claims = ['sub' => $sub, 'iat' => $now, 'exp' => $now + $ttl];
    if ($aud !== null && $aud !== '') {
        $claims['aud'] = $aud;
    }
    if ($iss !== null && $iss !== '') {
        $claims['iss'] = $iss;
    }
    $flags = JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR;
    $signingInput = pollgate_base64url(json_encode(['alg' => 'HS256', 'typ' => 'JWT'], $flags)) . '.'
        . pollgate_base64url(json_encode($claims, $flags));
    return $signingInput . '.' . pollgate_base64url(hash_hmac('sha256', $signingInput, $secret, true));
}

if (PHP_SAPI === 'cli' && isset($argv[0]) && realpath($argv[0]) === __FILE__) {
    $opts = ['secret-file' => getenv('POLLGATE_JWT_SECRET_FILE') ?: null,
             'aud' => getenv('POLLGATE_JWT_AUDIENCE') ?: null,
             'iss' => getenv('POLLGATE_JWT_ISSUER') ?: null];
    $args = [];
    foreach (array_slice($argv, 1) as $a) {
        if (preg_match('/^--(secret-file|aud|iss)=(.*)$/sD', $a, $m)) {
            $opts[$m[1]] = $m[2];
        } elseif ($a !== '' && $a[0] === '-' && !preg_match('/^-[0-9]+$/D', $a)) {
            fwrite(STDERR, "mint-jwt: unknown option $a\n");
            exit(2);
        } else {
            $args[] = $a;
        }
    }
    if (count($args) < 1 || count($args) > 2 || (isset($args[1]) && !preg_match('/^-?[0-9]+$/D', $args[1]))) {
        fwrite(STDERR, "usage: php mint-jwt.php USER_ID [TTL_SECONDS] [--secret-file=PATH] [--aud=AUD] [--iss=ISS]\n");
        exit(2);
    }
    if ($opts['secret-file'] !== null) {
        $secret = @file_get_contents($opts['secret-file']);
        if ($secret === false) {
            fwrite(STDERR, "mint-jwt: cannot read the secret file {$opts['secret-file']}\n");
            exit(1);
        }
    } else {
        $secret = getenv('POLLGATE_JWT_SECRET');
        if ($secret === false || $secret === '') {
            fwrite(STDERR, "mint-jwt: give --secret-file=PATH, POLLGATE_JWT_SECRET_FILE or POLLGATE_JWT_SECRET\n");
            exit(2);
        }
    }
    try {
        echo pollgate_jwt($args[0], $secret, isset($args[1]) ? (int)$args[1] : 300, $opts['aud'], $opts['iss']), "\n";
    } catch (InvalidArgumentException $e) {
        fwrite(STDERR, 'mint-jwt: ' . $e->getMessage() . "\n");
        exit(2);
    }
}
