<?php

// examples/laravel/app/Http/Middleware/IssuePollgateCookie.php — cookie mode: every page of the panel
// leaves with a fresh pollgate token in an HttpOnly cookie scoped to /pollgate/, so the page's long-polls
// carry it by themselves and no script ever sees it. Runs after authentication (a Filament panel's
// authMiddleware list). A guest gets no cookie.

namespace App\Http\Middleware;

use App\Support\PollgateToken;
use Closure;
use Illuminate\Http\Request;
use Symfony\Component\HttpFoundation\Response;

final class IssuePollgateCookie
{
    public function handle(Request $request, Closure $next): Response
    {
        $response = $next($request);
        $user = $request->user();
        if ($user !== null && config('pollgate.credential') === 'cookie') {
            $response->headers->setCookie(self::cookie((int) $user->getAuthIdentifier()));
        }

        return $response;
    }

    /** The cookie: HttpOnly, Secure, SameSite=Strict, only sent to /pollgate/, gone when the token expires. */
    public static function cookie(int $userId): \Symfony\Component\HttpFoundation\Cookie
    {
        $ttl = (int) config('pollgate.ttl', 300);

        return cookie(
            name: config('pollgate.cookie', 'pollgate_token'),
            value: PollgateToken::mint($userId, $ttl),
            minutes: max(1, intdiv($ttl, 60)),
            path: config('pollgate.path', '/pollgate/'),
            secure: true,
            httpOnly: true,
            sameSite: 'strict',
        );
    }
}
