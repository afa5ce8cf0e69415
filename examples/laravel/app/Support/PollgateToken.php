<?php

// examples/laravel/app/Support/PollgateToken.php — mints the short-lived HS256 JWT pollgate accepts, with
// nothing but PHP's own hash_hmac and base64 (no JWT package). The standalone script
// examples/php/mint-jwt.php does the same from the command line, and the test suite checks that a real
// gateway accepts what it prints.
//
// The token says who the user is (`sub`, the users.id pollgate's entitlement SQL knows) and until when
// (`exp`). It grants nothing by itself: pollgate still checks the user's memberships in SQL on every read.

namespace App\Support;

use RuntimeException;

final class PollgateToken
{
    /** A token for $userId, valid for $ttl seconds from now. */
    public static function mint(int $userId, ?int $ttl = null): string
    {
        $now = time();
        $claims = [
            'sub' => (string) $userId,          // decimal digits; the gateway also accepts a JSON integer
            'iat' => $now,
            'nbf' => $now,
            'exp' => $now + ($ttl ?? (int) config('pollgate.ttl', 300)),
        ];
        if ($aud = config('pollgate.audience')) {
            $claims['aud'] = $aud;
        }
        if ($iss = config('pollgate.issuer')) {
            $claims['iss'] = $iss;
        }

        $signingInput = self::base64url(self::json(['alg' => 'HS256', 'typ' => 'JWT']))
            . '.' . self::base64url(self::json($claims));
        $signature = hash_hmac('sha256', $signingInput, self::secret(), true);

        return $signingInput . '.' . self::base64url($signature);
    }

    /** Base64url without padding (RFC 7515 §2): what every JWT segment is. */
    public static function base64url(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }

    private static function json(array $value): string
    {
        return json_encode($value, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
    }

    /** The secret: the bytes of the gateway's jwt_key_file, read as they are. */
    private static function secret(): string
    {
        $path = (string) config('pollgate.jwt_key_file');
        $secret = is_readable($path) ? file_get_contents($path) : false;
        if ($secret === false || strlen($secret) < 32) {
            throw new RuntimeException("pollgate: cannot read a key of at least 32 bytes from {$path}");
        }

        return $secret;
    }
}
